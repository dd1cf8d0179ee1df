"""Counting segments over one big community: the SQL that CountSegment runs, timed.

    .venv/bin/python -m bench.segments                          # SQLite, 100,000 members
    .venv/bin/python -m bench.segments --store postgresql --members 100000
    .venv/bin/python -m bench.segments --database-url postgresql://.../empty_db

A fresh database is built by the members service's own migrations, then seeded with bulk
inserts: one big community of `--members` members (profiles, interests, two custom
attributes, points and streaks for most of them) next to a small one sharing its users, and
ANALYZEd. Three representative rules are parsed against the schema and counted with the
repository call CountSegment makes (`count_members`), `--rounds` times each; the first page
of ListSegmentMembers is timed too. Figures are printed as JSON. Target: every count under
one second on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, text

from bench.support import machine_facts, store_database
from services.kit.database import Database
from services.kit.migrations import migrate
from services.members.personas.store import AttributeRepository
from services.members.segments import rules as segment_rules
from services.members.segments.store import count_members, list_matching_members
from services.members.store.tables import (
    checkin_streaks,
    communities,
    member_activity,
    member_profiles,
    memberships,
    profile_attributes,
    profile_interests,
    profile_values,
)

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "members" / "store" / "migrations"
TAGS = ("python", "go", "ielts", "toefl", "grammar", "speaking", "sql", "math", "music", "art")
EXAMS = ("ielts", "toefl", "gre", "none")
CHUNK = 5_000
# Every value row names every typed column: one INSERT shape for the whole batch.
NO_VALUE = {"value_text": None, "value_number": None, "value_bool": None, "value_date": None}

RULES: dict[str, object] = {
    # The example from the brief: profile, tenure and activity together.
    "new_beginners_still_around": {
        "all": [
            {"attribute": "level", "op": "eq", "value": "beginner"},
            {"joined_within_days": 30},
            {
                "any": [
                    {"points_at_least": 20},
                    {"not": {"last_active_before": "2026-11-01"}},
                ]
            },
        ]
    },
    # Custom attributes and interests: the EXISTS-per-condition path.
    "python_exam_takers": {
        "all": [
            {"attribute": "interests", "op": "contains", "value": "python"},
            {"attribute": "hours", "op": "gte", "value": 5},
            {"attribute": "exam", "op": "in", "value": ["ielts", "toefl"]},
        ]
    },
    # Member care: slipping away or on a streak, plain members only.
    "care_list": {
        "all": [
            {"not": {"role_at_least": "moderator"}},
            {"any": [{"inactive_for_days": 14}, {"streak_at_least": 3}]},
        ]
    },
}


async def seed(url: str, members: int) -> tuple[str, float]:
    """The big community's id and the seconds seeding took."""
    started = time.perf_counter()
    database = Database(url)
    try:
        await migrate(database, MIGRATIONS, service="members")
        now = datetime.now(UTC)
        big, small = str(uuid.uuid4()), str(uuid.uuid4())
        rows: dict[Table, list[dict[str, Any]]] = {table: [] for table in SEGMENT_TABLES}
        for community_id, count in ((big, members), (small, max(members // 100, 10))):
            member_rows(rows, community_id, count, now, random.Random(count))
        async with database.write() as session:
            await session.execute(
                communities.insert(), [_community(big, "big", now), _community(small, "small", now)]
            )
            await session.execute(
                profile_attributes.insert(),
                [
                    attribute_row(community_id, key, kind, position, options, now)
                    for community_id in (big, small)
                    for position, (key, kind, options) in enumerate(
                        (("hours", 2, []), ("exam", 5, list(EXAMS))), start=1
                    )
                ],
            )
            for table, values in rows.items():
                for start in range(0, len(values), CHUNK):
                    await session.execute(table.insert(), values[start : start + CHUNK])
        async with database.writer.connect() as connection:
            # Planner statistics, as a production database has them.
            await connection.execute(text("ANALYZE"))
            await connection.commit()
        return big, time.perf_counter() - started
    finally:
        await database.close()


# The tables a segment rule reads, one list of rows each in a seed.
SEGMENT_TABLES = (
    memberships,
    member_profiles,
    profile_interests,
    profile_values,
    member_activity,
    checkin_streaks,
)


def member_rows(
    rows: dict[Table, list[dict[str, Any]]],
    community_id: str,
    count: int,
    now: datetime,
    rng: random.Random,
    user_of: Callable[[int], str] = "user-{:07d}".format,
) -> None:
    """`count` members of `community_id` (the `index`-th named `user_of(index)`), their
    profiles, attribute values, activity and streaks, appended to `rows` by table."""
    for index in range(count):
        user = user_of(index)
        mine = {"community_id": community_id, "user_id": user}
        rows[memberships].append(
            {
                **mine,
                "role": 2 if index % 500 == 0 else 1,
                "joined_at": now - timedelta(days=rng.randrange(365), seconds=index),
                "active": index % 50 != 0,
                "version": 1,
                "accepted_rules_version": 0,
            }
        )
        if index % 10 == 9:
            continue  # some members never fill in a profile
        interests = rng.sample(TAGS, rng.randrange(1, 4))
        rows[member_profiles].append(
            {
                **mine,
                "interests": interests,
                "learning_goals": [],
                "level": rng.choice((None, 1, 2, 3, 4)),
                "time_zone": rng.choice(("", "Asia/Shanghai", "Europe/Berlin")),
                "birthday_visible": False,
                "version": 1,
                "updated_at": now,
            }
        )
        rows[profile_interests].extend({**mine, "tag": tag} for tag in interests)
        rows[profile_values].append(
            {**mine, **NO_VALUE, "key": "hours", "value_number": rng.randrange(20)}
        )
        rows[profile_values].append(
            {**mine, **NO_VALUE, "key": "exam", "value_text": rng.choice(EXAMS)}
        )
        if rng.random() < 0.7:
            points = rng.randrange(200)
            rows[member_activity].append(
                {
                    **mine,
                    "points_total": points,
                    "level": 1 + points // 50,
                    "last_active_at": now - timedelta(days=rng.randrange(60)),
                }
            )
        if rng.random() < 0.3:
            last = now.date() - timedelta(days=rng.randrange(5))
            rows[checkin_streaks].append(
                {
                    **mine,
                    "current": rng.randrange(1, 30),
                    "longest": 30,
                    "last_date": last,
                    "next_day_start": datetime.combine(
                        last + timedelta(days=1), datetime.min.time(), UTC
                    ),
                }
            )


def _community(community_id: str, slug: str, now: datetime) -> dict[str, Any]:
    return {
        "id": community_id,
        "name": slug,
        "slug": f"{slug}-{community_id[:8]}",
        "topic": "exams",
        "tags": [],
        "visibility": 1,
        "join_policy": 1,
        "owner_user_id": "user-0000000",
        "created_at": now,
        "version": 1,
        "join_questions": [],
    }


def attribute_row(
    community_id: str, key: str, kind: int, position: int, options: list[str], now: datetime
) -> dict[str, Any]:
    return {
        "community_id": community_id,
        "key": key,
        "label": key,
        "type": kind,
        "required": False,
        "options": options,
        "position": position,
        "created_at": now,
        "version": 1,
    }


async def measure(url: str, community_id: str, rounds: int) -> dict[str, Any]:
    database = Database(url)
    figures: dict[str, Any] = {}
    try:
        async with database.read() as session:
            schema = await AttributeRepository(session).schema(community_id)
        fields = segment_rules.fields_of(schema)
        for name, rule in RULES.items():
            node = segment_rules.parse(json.dumps(rule), fields)
            counts: list[float] = []
            matched = 0
            for _ in range(rounds):
                async with database.read() as session:
                    started = time.perf_counter()
                    matched = await count_members(
                        session, community_id, node, now=datetime.now(UTC), grace_days=1
                    )
                    counts.append(time.perf_counter() - started)
            async with database.read() as session:
                started = time.perf_counter()
                await list_matching_members(
                    session,
                    community_id,
                    node,
                    now=datetime.now(UTC),
                    grace_days=1,
                    after=None,
                    limit=100,
                )
                first_page = time.perf_counter() - started
            figures[name] = {
                "members_matched": matched,
                "count_ms": {
                    "min": round(min(counts) * 1000, 1),
                    "median": round(statistics.median(counts) * 1000, 1),
                    "max": round(max(counts) * 1000, 1),
                },
                "first_page_of_100_ms": round(first_page * 1000, 1),
            }
    finally:
        await database.close()
    return figures


@contextlib.contextmanager
def database_url(options: argparse.Namespace, workdir: Path) -> Iterator[str]:
    if options.database_url:
        yield options.database_url
    else:
        with store_database(
            options.store, workdir, workdir / "members.db", "bench_segments"
        ) as url:
            yield url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--database-url", default="", help="an empty database to use instead of starting one"
    )
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp,
        database_url(options, Path(tmp)) as url,
    ):
        big, seeded = asyncio.run(seed(url, options.members))
        figures = asyncio.run(measure(url, big, options.rounds))
    store = "postgresql" if url.startswith("postgres") else "sqlite"
    print(
        json.dumps(
            {
                "store": store,
                "members": options.members,
                "seed_seconds": round(seeded, 1),
                "rules": figures,
                "machine": machine_facts(None),
                "date": date.today().isoformat(),
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
