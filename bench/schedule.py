"""Lateness of scheduled publishes: 10,000 drafts due evenly over one minute, published by the
content service's scheduler (services/kit/schedule.py, decision 0018), next to a bare asyncio
loop sleeping on the same due times in the same run.

    make bench-schedule                                         # SQLite, one API process
    make bench-schedule BENCH_ARGS="--store postgresql --replicas 2"

Target: p99 lateness (published_at - scheduled_at) under 1 s.

The content database is built by the service's own migrations and seeded in bulk: one
community in the access projection (`access_communities`) with `--authors` active members
(`access_roles`). Then `--replicas` content API processes start (`serve` mode; the relay and
the consumers are external and not started, so the scheduler is the only background work),
and `--posts` drafts in that community (`state` draft, `scheduled_at` their due time) and
their "publish_post" rows in `scheduled_jobs` are inserted in one transaction, due evenly
over `--spread` seconds starting `--lead` seconds after that insert. Nothing wakes the
replicas: each finds the jobs by its own 0.25 s poll, as a replica that did not schedule
the post does.

While they fall due, this process runs the baseline on its own event loop: one task that
sleeps until each of the same due times in order and records how late it woke. That is the
floor lateness of this machine under the same load (the replicas publishing, whatever else
shares the cores); the ratio of the two is readable on a noisy machine, where the absolute
figures are not.

When every post is published (or `--timeout` seconds after the last due time), the lateness
of each post is read from the database, and each post must have exactly one PostCreated in
the outbox (counted by `ce_subject`). The load average is printed at the start and at the
end: other processes on the same cores inflate both the figures and the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.content import article_body
from bench.members import free_port, process, wait_for_port
from bench.support import CpuMeter, machine_facts, percentile, store_database, wait_serving
from services.content.calendar.publishing import PUBLISH
from services.content.store import tables as content_tables
from services.kit.database import Database, utc
from services.kit.migrations import migrate
from studyhall.content.v1 import content_service_pb2 as pb
from tests.harness.servers import (
    find_nats_server,
    provide_nats,
    provide_redis,
)

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "content" / "store" / "migrations"
# p99 lateness of a scheduled publish, in seconds.
TARGET = 1.0
BATCH = 2000
POSTS = content_tables.posts
JOBS = content_tables.scheduled_jobs
OUTBOX = content_tables.outbox
_LATENESS_COUNT = re.compile(r"^studyhall_schedule_lateness\w*_count\{[^}]*\}\s+(\S+)$", re.M)


@dataclass(frozen=True)
class Lateness:
    """Percentiles of lateness in seconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Lateness:
        return cls(
            len(seconds),
            percentile(seconds, 0.50),
            percentile(seconds, 0.90),
            percentile(seconds, 0.99),
            max(seconds, default=0.0),
        )

    def describe(self) -> str:
        return (
            f"p50 {self.p50 * 1000:7.1f} ms  p90 {self.p90 * 1000:7.1f} ms  "
            f"p99 {self.p99 * 1000:7.1f} ms  max {self.max * 1000:7.1f} ms  (n={self.count:,})"
        )


@dataclass(frozen=True)
class Outcome:
    published: int
    missed: int
    drafts: int
    lateness: Lateness
    # Posts with no PostCreated, and with more than one.
    without_event: int
    duplicated: int
    jobs_left: int
    # From the first due time to the last publish, and the p99 lateness of the posts due in
    # each tenth of the spread, in order.
    span: float
    by_slice: list[float]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


# ---- seeding -------------------------------------------------------------------------------


async def seed_access(url: str, community_id: str, authors: list[str]) -> None:
    """The schema from content's migrations, and its projection of one community whose
    owner and `authors` are active members."""
    access = content_tables.access
    database = Database(url)
    try:
        await migrate(database, MIGRATIONS, service="content")
        roles: list[dict[str, Any]] = [
            {
                "community_id": community_id,
                "user_id": user_id,
                "role": 4 if number == 0 else 1,
                "active": True,
                "version": 1,
                "muted_until": None,
                "level": 1,
                "level_order": 0,
            }
            for number, user_id in enumerate(["owner-0", *authors])
        ]
        async with database.write() as session:
            await session.execute(
                access.communities.insert(),
                [{"community_id": community_id, "visibility": 1, "version": 1, "archived": False}],
            )
            await session.execute(access.roles.insert(), roles)
    finally:
        await database.close()


def due_times(start: datetime, count: int, spread: float) -> list[datetime]:
    """`count` instants evenly over `spread` seconds from `start`."""
    step = spread / count
    return [start + timedelta(seconds=number * step) for number in range(count)]


async def seed_scheduled(
    url: str, community_id: str, authors: list[str], count: int, spread: float, lead: float
) -> list[datetime]:
    """`count` scheduled drafts and their publish_post jobs in one transaction, due evenly
    over `spread` seconds from `lead` seconds after the transaction began; the due times."""
    database = Database(url)
    try:
        now = datetime.now(UTC)
        due = due_times(now + timedelta(seconds=lead), count, spread)
        body = article_body(600)
        ids = [str(uuid.uuid4()) for _ in range(count)]
        posts = [
            {
                "id": post_id,
                "community_id": community_id,
                "author_user_id": authors[number % len(authors)],
                "kind": pb.POST_KIND_ARTICLE,
                "title": f"Week {number} reading notes",
                "body": body,
                "url": "",
                "tags": ["notes"],
                "created_at": now,
                "version": 2,
                "summary": "",
                "state": pb.POST_STATE_DRAFT,
                "scheduled_at": when,
            }
            for number, (post_id, when) in enumerate(zip(ids, due, strict=True))
        ]
        jobs = [
            {
                "id": str(uuid.uuid4()),
                "kind": PUBLISH,
                "key": post_id,
                "community_id": community_id,
                "due_at": when,
                "created_at": now,
            }
            for post_id, when in zip(ids, due, strict=True)
        ]
        async with database.write() as session:
            for table, rows in ((POSTS, posts), (JOBS, jobs)):
                for start in range(0, len(rows), BATCH):
                    await session.execute(table.insert(), rows[start : start + BATCH])
    finally:
        await database.close()
    return due


# ---- the service ---------------------------------------------------------------------------


def start_replicas(
    stack: contextlib.ExitStack, env: dict[str, str], workdir: Path, replicas: int
) -> tuple[dict[str, int], list[int]]:
    """`replicas` content API processes; the relay and the consumers are external (not
    started). Returns their pids and their metrics ports."""
    pids: dict[str, int] = {}
    metrics_ports: list[int] = []
    for number in range(replicas):
        port, metrics_port = free_port(), free_port()
        child = stack.enter_context(
            process(
                [sys.executable, "-m", "services.content", "serve"],
                {
                    **env,
                    "STUDYHALL_RELAY": "external",
                    "STUDYHALL_CONSUMERS": "external",
                    "STUDYHALL_CONTENT_GRPC_PORT": str(port),
                    "STUDYHALL_CONTENT_METRICS_PORT": str(metrics_port),
                },
                workdir / f"content-api-{number}.log",
            )
        )
        wait_for_port(port, child)
        asyncio.run(wait_serving(port, "content"))
        pids[f"api {number}"] = child.pid
        metrics_ports.append(metrics_port)
    return pids, metrics_ports


def jobs_run_by(metrics_port: int) -> int | None:
    """Jobs the replica's `studyhall.schedule.lateness` histogram counted (None: unread)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    counts = _LATENESS_COUNT.findall(text)
    return int(sum(float(value) for value in counts)) if counts else None


# ---- the baseline --------------------------------------------------------------------------


async def sleep_through(due: list[datetime]) -> list[float]:
    """How late a bare asyncio task woke for each of `due`, sleeping until each in order."""
    late: list[float] = []
    for when in due:
        target = when.timestamp()
        delay = target - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late.append(max(time.time() - target, 0.0))
    return late


# ---- reading the outcome -------------------------------------------------------------------


async def published_count(url: str, community_id: str) -> int:
    database = Database(url)
    try:
        async with database.read() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(POSTS)
                    .where(
                        POSTS.c.community_id == community_id,
                        POSTS.c.state == pb.POST_STATE_PUBLISHED,
                    )
                )
                or 0
            )
    finally:
        await database.close()


async def wait_published(url: str, community_id: str, count: int, deadline: float) -> int:
    """Polls until `count` posts are published or `deadline` (monotonic) passes."""
    done = await published_count(url, community_id)
    while done < count and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        done = await published_count(url, community_id)
    return done


async def outcome(url: str, community_id: str) -> Outcome:
    database = Database(url)
    try:
        async with database.read() as session:
            rows = (
                await session.execute(
                    select(
                        POSTS.c.id,
                        POSTS.c.state,
                        POSTS.c.scheduled_at,
                        POSTS.c.published_at,
                        POSTS.c.missed_at,
                    ).where(POSTS.c.community_id == community_id)
                )
            ).all()
            events = await session.execute(
                select(OUTBOX.c.ce_subject, func.count())
                .where(OUTBOX.c.event_type.like("%.PostCreated"))
                .group_by(OUTBOX.c.ce_subject)
            )
            counts = {str(subject).rsplit("/", 1)[-1]: int(n) for subject, n in events}
            jobs_left = int(
                await session.scalar(
                    select(func.count()).select_from(JOBS).where(JOBS.c.kind == PUBLISH)
                )
                or 0
            )
    finally:
        await database.close()
    done = sorted(
        (utc(row.scheduled_at), utc(row.published_at))
        for row in rows
        if row.state == pb.POST_STATE_PUBLISHED
    )
    late = [(published - due).total_seconds() for due, published in done]
    span = (max(published for _, published in done) - done[0][0]).total_seconds() if done else 0.0
    size = max(len(late) // 10, 1)
    by_slice = [percentile(late[start : start + size], 0.99) for start in range(0, len(late), size)]
    return Outcome(
        published=len(late),
        missed=sum(row.missed_at is not None for row in rows),
        drafts=sum(row.state == pb.POST_STATE_DRAFT for row in rows),
        lateness=Lateness.of(late),
        without_event=sum(counts.get(row.id, 0) == 0 for row in rows),
        duplicated=sum(counts.get(row.id, 0) > 1 for row in rows),
        jobs_left=jobs_left,
        span=span,
        by_slice=by_slice,
    )


# ---- the run -------------------------------------------------------------------------------


def run(options: argparse.Namespace, workdir: Path) -> bool:
    """The benchmark; whether every post was published, each with one PostCreated."""
    print(f"load average at start: {load()}", flush=True)
    facts = machine_facts(find_nats_server()[0])
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()), flush=True)
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    community = str(uuid.uuid4())
    authors = [f"author-{number}" for number in range(options.authors)]
    with contextlib.ExitStack() as stack:
        nats_server = stack.enter_context(provide_nats(workdir / "nats"))
        redis_server = stack.enter_context(provide_redis(workdir / "redis"))
        url = stack.enter_context(
            store_database(options.store, workdir, data_dir / "content.db", "bench_schedule")
        )
        asyncio.run(seed_access(url, community, authors))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STUDYHALL_")},
            "STUDYHALL_DATA_DIR": str(data_dir),
            "STUDYHALL_NATS_URL": nats_server.url,
            "STUDYHALL_REDIS_URL": redis_server.url,
            "STUDYHALL_CONTENT_DATABASE_URL": url,
            "STUDYHALL_LOG_LEVEL": "WARNING",
        }
        starting = time.perf_counter()
        pids, metrics_ports = start_replicas(stack, env, workdir, options.replicas)
        print(
            f"{options.replicas} content API process(es) serving in "
            f"{time.perf_counter() - starting:.1f} s ({options.store})",
            flush=True,
        )
        seeding = time.perf_counter()
        due = asyncio.run(
            seed_scheduled(url, community, authors, options.posts, options.spread, options.lead)
        )
        seeded = datetime.now(UTC)
        ahead = (due[0] - seeded).total_seconds()
        print(
            f"seeded {options.posts:,} scheduled drafts by {len(authors)} authors and their "
            f"jobs in {time.perf_counter() - seeding:.1f} s; the first is due {ahead:.1f} s "
            f"later, the last {options.spread:.0f} s after it",
            flush=True,
        )
        if ahead <= 0:
            raise SystemExit("seeding outlasted --lead: the first posts were due before it ended")
        # Measured from the first due time to the last, while the replicas publish.
        time.sleep(max((due[0] - datetime.now(UTC)).total_seconds(), 0.0))
        minute, whole = (CpuMeter(dict[str, int | None](pids)) for _ in range(2))
        baseline = Lateness.of(asyncio.run(sleep_through(due)))
        cpu = minute.stop()
        deadline = time.monotonic() + options.timeout
        done = asyncio.run(wait_published(url, community, options.posts, deadline))
        publishing = whole.stop()
        finished = (datetime.now(UTC) - due[-1]).total_seconds()
        result = asyncio.run(outcome(url, community))
        per_replica = {
            name: jobs_run_by(port) for name, port in zip(pids, metrics_ports, strict=True)
        }
    print(f"load average at end: {load()}", flush=True)
    print(
        f"\n{options.posts:,} posts due evenly over {options.spread:.0f} s "
        f"({options.posts / options.spread:.0f}/s), store {options.store}, "
        f"{options.replicas} content API replica(s), relay and consumers not running"
    )
    print(
        f"published {result.published:,} of {options.posts:,} "
        f"({done:,} when the wait ended {finished:.1f} s after the last due time); "
        f"missed {result.missed}, still drafts {result.drafts}, jobs left {result.jobs_left}"
    )
    print(
        "jobs run per replica (studyhall.schedule.lateness count): "
        + ", ".join(
            f"{name} {'n/a' if count is None else f'{count:,}'}"
            for name, count in per_replica.items()
        )
    )
    print(f"scheduled publish  {result.lateness.describe()}")
    print(f"bare asyncio sleep {baseline.describe()}")
    print(
        "p99 lateness by tenth of the minute (posts in due order): "
        + ", ".join(f"{seconds:.2f}" for seconds in result.by_slice)
        + " s"
    )
    print(
        f"published at {result.published / max(result.span, 1e-9):.0f} posts/s from the first "
        f"due time to the last publish ({result.span:.1f} s; due at "
        f"{options.posts / options.spread:.0f}/s)"
    )
    print(f"during the minute: {cpu.describe()}")
    replica_cpu = sum(publishing.others.values()) * publishing.wall
    print(
        f"replicas' CPU per publish, first due time to the last publish: "
        f"{replica_cpu / max(result.published, 1) * 1000:.2f} ms "
        f"({replica_cpu:.1f} CPU s over {publishing.wall:.1f} s; "
        f"{publishing.describe()})"
    )
    once = result.without_event == 0 and result.duplicated == 0
    print(
        f"PostCreated in the outbox: {options.posts - result.without_event - result.duplicated:,}"
        f" posts with exactly one, {result.without_event} with none, "
        f"{result.duplicated} with more than one"
    )
    floor = max(baseline.p99, 1e-6)
    print(
        f"p99 lateness {result.lateness.p99 * 1000:.1f} ms (target < {TARGET * 1000:.0f} ms: "
        f"{'met' if result.lateness.p99 < TARGET else 'NOT met'}); "
        f"{result.lateness.p99 / floor:.1f}x the bare loop's p99"
    )
    return result.published == options.posts and once


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--replicas", type=int, default=1, help="content API processes")
    parser.add_argument("--posts", type=int, default=10_000, help="scheduled drafts")
    parser.add_argument("--authors", type=int, default=100, help="members who wrote them")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds they fall due over")
    parser.add_argument(
        "--lead", type=float, default=15.0, help="seconds from seeding to the first due time"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds after the last due time to wait"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-schedule-") as scratch:
        ok = run(options, Path(scratch))
    if not ok:
        raise SystemExit("not every post was published exactly once")


if __name__ == "__main__":
    main()
