"""Wiring of the members service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.settings import load_settings
from services.members.api import SERVICE_NAME, MembersApi
from services.members.settings import MembersSettings
from services.members.store.tables import outbox
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    pb_grpc.add_MembersServiceServicer_to_server(
        MembersApi(deps.database, on_commit=deps.notify_outbox), server
    )


SPEC = ServiceSpec(
    name="members",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    outbox=outbox,
)


def main() -> None:
    run(SPEC, load_settings(MembersSettings))
