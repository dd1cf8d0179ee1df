"""Members' points from facts: the recognition consumer's batches next to bare ledger inserts.

    .venv/bin/python -m bench.recognition                     # SQLite
    .venv/bin/python -m bench.recognition --store postgresql

Seeds `--communities` communities of `--members` members each (schema from the members
migrations), then lands `--facts` PostCreated facts by random members through the consumer's
own `PointsFromFacts.apply`, `--batch` facts to a transaction as the consumer fetches them
(each award: its ledger entry, the member's total and level, badges, PointsAwarded in the
outbox, the boards in Redis after the commit). The baseline, in the same run: the same
number of ledger rows written by one executemany per batch in a transaction of its own, the
floor of any way to land them. Redis and PostgreSQL come from the test harness. Prints one
JSON document.
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
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from bench.support import store_database
from services.kit.cache import ResilientRedis
from services.kit.database import Database
from services.kit.events.envelope import Envelope
from services.kit.migrations import migrate
from services.members.recognition.consumers import PointsFromFacts
from services.members.recognition.leaderboards import Leaderboards
from services.members.store.tables import communities, memberships, points_ledger
from studyhall.content.v1 import content_events_pb2 as content_events
from tests.harness.servers import provide_redis

MIGRATIONS = (
    Path(__file__).resolve().parent.parent / "services" / "members" / "store" / "migrations"
)


async def seed(database: Database, community_ids: list[str], members: int) -> None:
    now = datetime.now(UTC)
    async with database.write() as session:
        await session.execute(
            communities.insert(),
            [
                {
                    "id": community_id,
                    "name": f"Bench {number}",
                    "slug": f"bench-{community_id[:8]}",
                    "topic": "bench",
                    "tags": [],
                    "visibility": 1,
                    "join_policy": 1,
                    "owner_user_id": "owner",
                    "created_at": now,
                    "version": 1,
                    "time_zone": "Asia/Shanghai",
                }
                for number, community_id in enumerate(community_ids)
            ],
        )
        await session.execute(
            memberships.insert(),
            [
                {
                    "community_id": community_id,
                    "user_id": f"user-{index:05d}",
                    "role": 1,
                    "joined_at": now,
                    "active": True,
                }
                for community_id in community_ids
                for index in range(members)
            ],
        )


def facts(
    community_ids: list[str], members: int, count: int
) -> list[tuple[content_events.PostCreated, Envelope]]:
    random.seed(11)
    made = []
    for _ in range(count):
        community_id = random.choice(community_ids)
        at = Timestamp()
        at.GetCurrentTime()
        event = content_events.PostCreated(
            community_id=community_id,
            post_id=str(uuid.uuid4()),
            author_user_id=f"user-{random.randrange(members):05d}",
            create_time=at,
        )
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source="content",
            type="studyhall.content.v1.PostCreated",
            time=datetime.now(UTC),
            subject=f"studyhall.content.{community_id}.PostCreated",
            community_id=community_id,
            data=event.SerializeToString(),
        )
        made.append((event, envelope))
    return made


async def consumer(database: Database, points: PointsFromFacts, batches: list[list[Any]]) -> float:
    started = time.perf_counter()
    for batch in batches:
        async with database.write() as session:
            await points.apply(session, batch)
    await points.drain()
    return time.perf_counter() - started


async def raw(database: Database, batches: list[list[Any]]) -> float:
    started = time.perf_counter()
    for batch in batches:
        async with database.write() as session:
            await session.execute(
                points_ledger.insert(),
                [
                    {
                        "community_id": event.community_id,
                        "user_id": event.author_user_id,
                        "amount": 2,
                        "reason": "raw",
                        "source_event_id": "raw-" + envelope.id,
                        "awarded_by": "",
                        "note": "",
                        "created_at": envelope.time,
                        "local_date": date.today(),
                    }
                    for event, envelope in batch
                ],
            )
    return time.perf_counter() - started


async def bench(options: argparse.Namespace, database_url: str, redis_url: str) -> dict[str, Any]:
    database = Database(database_url)
    redis = ResilientRedis(redis_url, timeout_seconds=5.0)
    try:
        await migrate(database, MIGRATIONS, service="members")
        community_ids = [str(uuid.uuid4()) for _ in range(options.communities)]
        await seed(database, community_ids, options.members)
        made = facts(community_ids, options.members, options.facts * options.rounds)
        points = PointsFromFacts(Leaderboards(redis, database))
        rounds = []
        for number in range(options.rounds):
            mine = made[number * options.facts : (number + 1) * options.facts]
            batches = [mine[i : i + options.batch] for i in range(0, len(mine), options.batch)]
            landed = options.facts / await consumer(database, points, batches)
            floor = options.facts / await raw(database, batches)
            rounds.append((landed, floor))
        ratios = sorted(landed / floor for landed, floor in rounds)
        return {
            "store": options.store,
            "communities": options.communities,
            "members_each": options.members,
            "facts_per_round": options.facts,
            "batch": options.batch,
            "consumer_facts_per_s": [round(landed) for landed, _ in rounds],
            "raw_rows_per_s": [round(floor) for _, floor in rounds],
            "ratio_median": round(ratios[len(ratios) // 2], 3),
        }
    finally:
        await redis.close()
        await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--communities", type=int, default=100)
    parser.add_argument("--members", type=int, default=200, help="members of each community")
    parser.add_argument("--facts", type=int, default=5_000, help="facts landed per round")
    parser.add_argument("--batch", type=int, default=100, help="facts per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        workdir = Path(directory)
        redis_server = stack.enter_context(provide_redis(workdir / "redis"))
        database_url = stack.enter_context(
            store_database(options.store, workdir, workdir / "members.db", "bench_rec")
        )
        report = asyncio.run(bench(options, database_url, redis_server.url))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
