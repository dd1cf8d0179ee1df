"""Wiring of the analytics service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.analytics import data
from services.analytics.api import SERVICE_NAME, AnalyticsApi
from services.analytics.consumers import SUBSCRIPTIONS
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.tables import access, idempotency_keys, inbox
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.idempotency import IdempotentWriter
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import load_settings
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc

# Everything analytics holds about a member: ExportMyData, EraseMyData and MemberErased.
HOLDERS: tuple[DataHolder, ...] = (StandingData(access), data)


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    servicer = compose(
        pb_grpc.AnalyticsServiceServicer,
        pb.DESCRIPTOR.services_by_name["AnalyticsService"],
        AnalyticsApi(deps.database, Access("analytics", deps.database, access, deps.redis)),
        DataRightsApi(
            deps.database, IdempotentWriter(deps.database, idempotency_keys), HOLDERS, pb
        ),
    )
    pb_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)


SPEC = ServiceSpec(
    name="analytics",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    inbox=inbox,
    subscriptions=lambda deps: [
        *SUBSCRIPTIONS,
        access_subscription("analytics", access),
        erasure_subscription("analytics", HOLDERS),
    ],
)


def main() -> None:
    run(SPEC, load_settings(AnalyticsSettings))
