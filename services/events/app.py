"""Wiring of the events service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.events import data
from services.events.api import SERVICE_NAME, ActivitiesApi
from services.events.settings import EventsSettings
from services.events.store.tables import access, idempotency_keys, inbox
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.idempotency import IdempotentWriter
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import load_settings
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc

# Everything the events service holds about a member: ExportMyData, EraseMyData and
# MemberErased.
HOLDERS: tuple[DataHolder, ...] = (StandingData(access), data)


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    servicer = compose(
        pb_grpc.ActivitiesServiceServicer,
        pb.DESCRIPTOR.services_by_name["ActivitiesService"],
        ActivitiesApi(deps.database, Access("events", deps.database, access, deps.redis)),
        DataRightsApi(
            deps.database, IdempotentWriter(deps.database, idempotency_keys), HOLDERS, pb
        ),
    )
    pb_grpc.add_ActivitiesServiceServicer_to_server(servicer, server)


SPEC = ServiceSpec(
    name="events",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    inbox=inbox,
    subscriptions=lambda deps: [
        access_subscription("events", access),
        erasure_subscription("events", HOLDERS),
    ],
)


def main() -> None:
    run(SPEC, load_settings(EventsSettings))
