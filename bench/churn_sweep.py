"""Cost of analytics' nightly churn sweep and of a weekly report for one big community.

    make bench-churn                                   # 5,000 members, 30 active days each
    make bench-churn BENCH_ARGS="--members 20000 --days 60"

A new SQLite store is built by analytics' own migrations and seeded in bulk: `--members`
counted members (`member_states`) with `--days` active days each, drawn at random in the
118 days a sweep reads (`member_days`). Then the sweep handler of one community runs in one
transaction as the scheduler runs it (services/analytics/engagement/sweep.py: every member
judged, changed risks stored and staged as ChurnRiskChanged in the outbox), and the weekly
report's figures are gathered once. The load average is printed: other processes on the same
cores inflate every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from services.analytics.app import SPEC
from services.analytics.engagement.sweep import sweep
from services.analytics.reports.api import gather
from services.analytics.store.sweeps import CHURN_SWEEP, SWEEP_TIME
from services.analytics.store.tables import member_days, member_states, outbox
from services.kit.database import Database
from services.kit.migrations import migrate
from services.kit.schedule import Job

DAY = date(2030, 3, 1)


def seeded_days(members: int, days: int, rng: random.Random, community_id: str) -> list[Any]:
    rows = []
    for n in range(members):
        for back in rng.sample(range(118), days):
            rows.append(
                {
                    "community_id": community_id,
                    "day": DAY - timedelta(days=back),
                    "user_id": f"u{n}",
                    "posts": rng.randint(0, 2),
                    "comments": rng.randint(0, 3),
                    "reactions": rng.randint(0, 5),
                    "checkins": 1,
                    "registrations": 0,
                    "attendances": 0,
                    "streak": 0,
                }
            )
    return rows


async def run(members: int, days: int) -> None:
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as directory:
        database = Database(f"sqlite+aiosqlite:///{Path(directory) / 'analytics.db'}")
        await migrate(database, SPEC.migrations, service="analytics")
        community_id = str(uuid.uuid4())
        rows = seeded_days(members, days, random.Random(1), community_id)
        async with database.write() as session:
            await session.execute(
                member_states.insert(),
                [
                    {"community_id": community_id, "user_id": f"u{n}", "active": True, "version": 1}
                    for n in range(members)
                ],
            )
            await session.execute(member_days.insert(), rows)
        due = datetime.combine(DAY + timedelta(days=1), SWEEP_TIME)
        started = time.perf_counter()
        async with database.write() as session:
            await sweep(session, Job(CHURN_SWEEP, f"{community_id}/bench", community_id, due))
        swept = time.perf_counter() - started
        async with database.read() as session:
            changed = await session.scalar(select(func.count()).select_from(outbox))
        started = time.perf_counter()
        async with database.read() as session:
            await gather(session, community_id, DAY - timedelta(days=DAY.weekday() + 7))
        reported = time.perf_counter() - started
        await database.close()
    print(
        f"{members:,} members x {days} active days ({len(rows):,} member_days rows): "
        f"sweep {swept:.2f} s ({changed:,} ChurnRiskChanged staged), "
        f"weekly report figures {reported:.2f} s"
    )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.churn_sweep")
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    options = parser.parse_args()
    asyncio.run(run(options.members, options.days))


if __name__ == "__main__":
    main()
