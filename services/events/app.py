"""Wiring of the events service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.events.api import SERVICE_NAME, ActivitiesApi
from services.events.settings import EventsSettings
from services.events.store.tables import access, inbox
from services.kit.access import Access, access_subscription
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.settings import load_settings
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    pb_grpc.add_ActivitiesServiceServicer_to_server(
        ActivitiesApi(deps.database, Access("events", deps.database, access, deps.redis)), server
    )


SPEC = ServiceSpec(
    name="events",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    inbox=inbox,
    subscriptions=lambda deps: [access_subscription("events", access)],
)


def main() -> None:
    run(SPEC, load_settings(EventsSettings))
