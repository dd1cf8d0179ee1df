"""Wiring of the analytics service process."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc

from services.analytics import data
from services.analytics.api import SERVICE_NAME, AnalyticsApi
from services.analytics.benchmarks.api import BenchmarksApi
from services.analytics.consumers import SUBSCRIPTIONS
from services.analytics.engagement.api import EngagementApi
from services.analytics.engagement.sweep import sweep
from services.analytics.rebuild import rebuild
from services.analytics.reports.api import ReportsApi
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.sweeps import CHURN_SWEEP
from services.analytics.store.tables import (
    access,
    idempotency_keys,
    inbox,
    outbox,
    scheduled_jobs,
)
from services.analytics.surveys import data as surveys_data
from services.analytics.surveys.api import SurveysApi
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.database import Database
from services.kit.events.consumer import Subscription
from services.kit.grouped_writes import GroupedWriter
from services.kit.idempotency import IdempotentWriter
from services.kit.schedule import Handler
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import load_settings
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc

# Everything analytics holds about a member: ExportMyData, EraseMyData and MemberErased.
HOLDERS: tuple[DataHolder, ...] = (StandingData(access), data, surveys_data)


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    database = deps.database
    checks = Access("analytics", database, access, deps.redis)
    idempotent = IdempotentWriter(database, idempotency_keys, on_commit=deps.notify_outbox)
    writer = GroupedWriter(idempotent)
    servicer = compose(
        pb_grpc.AnalyticsServiceServicer,
        pb.DESCRIPTOR.services_by_name["AnalyticsService"],
        AnalyticsApi(database, checks),
        SurveysApi(database, checks, writer, members=_members_channel(deps)),
        EngagementApi(database, checks),
        BenchmarksApi(database, checks),
        ReportsApi(database, checks),
        DataRightsApi(database, idempotent, HOLDERS, pb),
    )
    pb_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)


def _members_channel(deps: Dependencies) -> Callable[[], grpc.aio.Channel]:
    """The members service's API, connected on first use (a survey aimed at a segment):
    analytics starts and serves without it."""
    settings = deps.settings
    assert isinstance(settings, AnalyticsSettings)
    channels: list[grpc.aio.Channel] = []

    def channel() -> grpc.aio.Channel:
        if not channels:
            channels.append(grpc.aio.insecure_channel(settings.members_address))
        return channels[0]

    return channel


def jobs(deps: Dependencies) -> Mapping[str, Handler]:
    return {CHURN_SWEEP: sweep}


SPEC = ServiceSpec(
    name="analytics",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    outbox=outbox,
    inbox=inbox,
    subscriptions=lambda deps: subscriptions(),
    schedule=scheduled_jobs,
    jobs=jobs,
)


def subscriptions() -> list[Subscription]:
    """Every durable consumer of the service: what a rebuild replays."""
    return [
        *SUBSCRIPTIONS,
        access_subscription("analytics", access),
        erasure_subscription("analytics", HOLDERS),
    ]


def rebuild_command(settings: AnalyticsSettings, argv: list[str]) -> int:
    """`python -m services.analytics rebuild [--into URL] [--no-compare]`: exit 0 when the
    rebuilt store matches the live one, 1 when it differs."""
    parser = argparse.ArgumentParser(prog="studyhall analytics rebuild")
    parser.add_argument(
        "--into",
        help="database URL of the fresh store (default: a new SQLite file in the data dir)",
    )
    parser.add_argument("--no-compare", action="store_true", help="rebuild only")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    options = parser.parse_args(argv)
    into = options.into or (
        f"sqlite+aiosqlite:///{settings.data_dir}/analytics-rebuild-{int(time.time())}.db"
    )
    if not options.json:
        print(f"rebuilding analytics into {into}")

    async def go() -> int:
        live, fresh = Database(settings.effective_database_url()), Database(into)
        try:
            report = await rebuild(
                nats_url=settings.nats_url,
                nats_auth=settings.nats_auth(),
                live=live,
                fresh=fresh,
                subscriptions=subscriptions(),
                migrations=SPEC.migrations,
                compare=not options.no_compare,
            )
        finally:
            await live.close()
            await fresh.close()
        compared = not options.no_compare
        print(report.as_json(into, compared) if options.json else report.as_text(compared))
        return 1 if compared and report.differences else 0

    return asyncio.run(go())


def main() -> None:
    settings = load_settings(AnalyticsSettings)
    if sys.argv[1:2] == ["rebuild"]:
        raise SystemExit(rebuild_command(settings, sys.argv[2:]))
    run(SPEC, settings)
