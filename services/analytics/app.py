"""Wiring of the analytics service process."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import grpc

from services.analytics import data
from services.analytics.api import SERVICE_NAME, AnalyticsApi
from services.analytics.consumers import SUBSCRIPTIONS
from services.analytics.rebuild import rebuild
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.tables import access, idempotency_keys, inbox
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.database import Database
from services.kit.events.consumer import Subscription
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
    subscriptions=lambda deps: subscriptions(),
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
    options = parser.parse_args(argv)
    into = options.into or (
        f"sqlite+aiosqlite:///{settings.data_dir}/analytics-rebuild-{int(time.time())}.db"
    )
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
        for stream, sequence in sorted(report.sequences.items()):
            print(f"  {stream} up to sequence {sequence}")
        if options.no_compare:
            return 0
        if not report.differences:
            print(f"the rebuilt store matches the live one ({report.compared_rows:,} rows)")
            return 0
        for table, samples in sorted(report.differences.items()):
            print(f"DIFFERENT {table}:")
            for sample in samples:
                print(f"    {sample}")
        return 1

    return asyncio.run(go())


def main() -> None:
    settings = load_settings(AnalyticsSettings)
    if sys.argv[1:2] == ["rebuild"]:
        raise SystemExit(rebuild_command(settings, sys.argv[2:]))
    run(SPEC, settings)
