"""Wiring of the analytics service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.analytics.api import SERVICE_NAME, AnalyticsApi
from services.analytics.consumers import MEMBERS
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.tables import access, inbox
from services.kit.access import Access, access_subscription
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.settings import load_settings
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    pb_grpc.add_AnalyticsServiceServicer_to_server(
        AnalyticsApi(deps.database, Access("analytics", deps.database, access, deps.redis)), server
    )


SPEC = ServiceSpec(
    name="analytics",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    inbox=inbox,
    subscriptions=lambda deps: [MEMBERS, access_subscription("analytics", access)],
)


def main() -> None:
    run(SPEC, load_settings(AnalyticsSettings))
