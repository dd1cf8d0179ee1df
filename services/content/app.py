"""Wiring of the content service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.content.api import SERVICE_NAME, ContentApi
from services.content.settings import ContentSettings
from services.content.store.tables import access, inbox, outbox
from services.kit.access import Access, access_subscription
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.settings import load_settings
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    pb_grpc.add_ContentServiceServicer_to_server(
        ContentApi(
            deps.database,
            Access("content", deps.database, access, deps.redis),
            on_commit=deps.notify_outbox,
        ),
        server,
    )


SPEC = ServiceSpec(
    name="content",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    outbox=outbox,
    inbox=inbox,
    subscriptions=lambda deps: [access_subscription("content", access)],
)


def main() -> None:
    run(SPEC, load_settings(ContentSettings))
