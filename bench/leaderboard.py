"""Leaderboard reads: the top 10 from Redis next to the same read answered from SQL.

    .venv/bin/python -m bench.leaderboard                     # SQLite
    .venv/bin/python -m bench.leaderboard --store postgresql --members 100000

Seeds one community's ledger (schema from the members migrations) with `--members` members'
entries spread over 30 local days, builds the boards once from the ledger (the rebuild a
FLUSHALL would cause, timed), then measures `--reads` top-10 reads of each window from
Redis and, as the baseline, from SQL. Redis and PostgreSQL come from the test harness
(STUDYHALL_TEST_*_URL or local servers). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import tempfile
import time
import uuid
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.support import Latency, store_database
from services.kit.cache import ResilientRedis
from services.kit.database import Database
from services.kit.migrations import migrate
from services.members.recognition.leaderboards import Leaderboards, Window
from services.members.store.tables import communities, member_activity, points_ledger
from tests.harness.servers import provide_redis

MIGRATIONS = (
    Path(__file__).resolve().parent.parent / "services" / "members" / "store" / "migrations"
)
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")


async def seed(database: Database, community_id: str, members: int) -> int:
    now = datetime.now(UTC)
    random.seed(7)
    async with database.write() as session:
        await session.execute(
            communities.insert().values(
                id=community_id,
                name="Bench",
                slug=f"bench-{community_id[:8]}",
                topic="bench",
                tags=[],
                visibility=1,
                join_policy=1,
                owner_user_id="owner",
                created_at=now,
                version=1,
                time_zone="Asia/Shanghai",
            )
        )
    totals: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for index in range(members):
        user = f"user-{index:06d}"
        at = now - timedelta(days=random.randrange(30), seconds=random.randrange(86400))
        amount = random.choice((1, 1, 2, 2, 5, 10))
        totals[user] = amount
        rows.append(
            {
                "community_id": community_id,
                "user_id": user,
                "amount": amount,
                "reason": "post_created",
                "source_event_id": str(uuid.uuid4()),
                "awarded_by": "",
                "note": "",
                "created_at": at,
                "local_date": at.astimezone(ZONE).date(),
            }
        )
    for start in range(0, len(rows), 5000):
        async with database.write() as session:
            await session.execute(points_ledger.insert(), rows[start : start + 5000])
            await session.execute(
                member_activity.insert(),
                [
                    {
                        "community_id": community_id,
                        "user_id": row["user_id"],
                        "points_total": totals[row["user_id"]],
                        "level": 1,
                        "last_active_at": row["created_at"],
                    }
                    for row in rows[start : start + 5000]
                ],
            )
    return len(rows)


async def measure(
    boards: Leaderboards, community_id: str, window: Window, reads: int, sql: bool
) -> Latency:
    seconds: list[float] = []
    for _ in range(reads):
        started = time.perf_counter()
        if sql:
            await boards.from_ledger(community_id, window, ZONE, offset=0, limit=10)
        else:
            await boards.top(community_id, window, ZONE, offset=0, limit=10)
        seconds.append(time.perf_counter() - started)
    return Latency.of(seconds)


async def bench(options: argparse.Namespace, database_url: str, redis_url: str) -> dict[str, Any]:
    database = Database(database_url)
    redis = ResilientRedis(redis_url, timeout_seconds=5.0)
    try:
        await migrate(database, MIGRATIONS, service="members")
        community_id = str(uuid.uuid4())
        started = time.perf_counter()
        rows = await seed(database, community_id, options.members)
        seeded = time.perf_counter() - started
        boards = Leaderboards(redis, database)
        started = time.perf_counter()
        await boards.top(community_id, Window.ALL_TIME, ZONE, offset=0, limit=10)
        rebuilt = time.perf_counter() - started
        results: dict[str, Any] = {}
        for window in Window:
            redis_read = await measure(boards, community_id, window, options.reads, sql=False)
            # Each SQL read aggregates the whole window: fewer of them give a stable p99.
            sql_read = await measure(boards, community_id, window, options.sql_reads, sql=True)
            results[window.name.lower()] = {
                "redis_p99_ms": round(redis_read.p99 * 1000, 3),
                "redis_p50_ms": round(redis_read.p50 * 1000, 3),
                "sql_p99_ms": round(sql_read.p99 * 1000, 3),
                "sql_p50_ms": round(sql_read.p50 * 1000, 3),
            }
        return {
            "store": options.store,
            "ledger_rows": rows,
            "seed_seconds": round(seeded, 2),
            "rebuild_seconds": round(rebuilt, 3),
            "reads_per_window": options.reads,
            "sql_reads_per_window": options.sql_reads,
            "top_10": results,
        }
    finally:
        await redis.close()
        await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--sql-reads", type=int, default=100)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        workdir = Path(directory)
        redis_server = stack.enter_context(provide_redis(workdir / "redis"))
        database_url = stack.enter_context(
            store_database(options.store, workdir, workdir / "members.db", "bench_lb")
        )
        report = asyncio.run(bench(options, database_url, redis_server.url))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
