"""Wiring of the content service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.content import data
from services.content.api import SERVICE_NAME, ContentApi
from services.content.settings import ContentSettings
from services.content.store.tables import access, idempotency_keys, inbox, outbox
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.idempotency import IdempotentWriter
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import load_settings
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc

# Everything content holds about a member: ExportMyData, EraseMyData and MemberErased.
HOLDERS: tuple[DataHolder, ...] = (StandingData(access), data)


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    servicer = compose(
        pb_grpc.ContentServiceServicer,
        pb.DESCRIPTOR.services_by_name["ContentService"],
        ContentApi(
            deps.database,
            Access("content", deps.database, access, deps.redis),
            on_commit=deps.notify_outbox,
        ),
        DataRightsApi(
            deps.database, IdempotentWriter(deps.database, idempotency_keys), HOLDERS, pb
        ),
    )
    pb_grpc.add_ContentServiceServicer_to_server(servicer, server)


SPEC = ServiceSpec(
    name="content",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    outbox=outbox,
    inbox=inbox,
    subscriptions=lambda deps: [
        access_subscription("content", access),
        erasure_subscription("content", HOLDERS),
    ],
)


def main() -> None:
    run(SPEC, load_settings(ContentSettings))
