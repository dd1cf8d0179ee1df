"""Analytics: how fresh its figures are under load, and how fast it rebuilds from history.

    make bench-analytics                                   # both parts, defaults below
    make bench-analytics BENCH_ARGS="--only freshness --store postgresql --seconds 60"
    make bench-analytics BENCH_ARGS="--only rebuild --events 2000000"     # the issue's figure
    make bench-analytics BENCH_ARGS="--only rebuild --events 20000000"    # the long run

The rebuild merges the whole history in memory (docs/decisions/0034): its peak was 455 MiB
at 200,000 events and 2.5 GiB at 2,000,000, so the long run wants a machine with about
25 GiB free and an afternoon (seeding alone runs at 6,000-8,000 events/s).

(a) Freshness, per store of `--store` (PostgreSQL first: the target is there): a nats-server
from the test harness, the members service (one API process, its relay embedded so a
committed join is published at once) and analytics as Kubernetes runs it (the API and the
consumers in processes of their own). bench.seeder publishes a background load of `--rate`
facts a second (joins, posts, check-ins across `--communities` communities) straight into the
streams, while every `--every` seconds a new user joins a watched community through members'
JoinCommunity, and this process asks analytics' GetCommunityStats for that community every
`--poll` seconds. Action → visible is from the call's start until the answer's member_count
includes that join: the API call, the outbox, the relay, JetStream, analytics' consumer and
the poll's own wait (target: p99 under 250 ms on PostgreSQL).

(b) Rebuild, on the first store of `--store`: `--events` facts of the seeder's full mix
(joins, posts, comments, reactions, check-ins, activities, registrations) are published into
the streams, then analytics' consumers run live (a `consume` process) until they have caught
up. Then, in the same run and on the same streams: a raw nats-py pull-consume (an ephemeral
consumer, no acks, batches of 2,000, nothing decoded) and `python -m services.analytics
rebuild --into <fresh store>`, the operator's command, which replays every projection and
compares it row by row with the live store. Both rates are stream messages per second of
wall time (the rebuild reads members' stream once per consumer of it, as it must); the target
is rebuild at least 0.5 of raw, and the comparison must find no difference.

A second baseline does the least any projection of these facts must do: the raw consume,
then the fastest bulk insert of every row the rebuild wrote into a fresh copy of the schema
(COPY through asyncpg on PostgreSQL, executemany of 5,000 rows on SQLite), timed, so its
rate is messages / (raw consume + insert). A pull-consume that decodes and writes nothing is no
projection's ceiling; this one is, and the rebuild is held to at least 0.5 of it as well.

The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bench.members import free_port, process, wait_for_port
from bench.seeder import STREAMS, Population, Seeder, seed_history
from bench.support import CpuMeter, CpuUse, Latency, machine_facts, profiling, wait_serving
from services.analytics.app import SPEC as ANALYTICS
from services.analytics.store.tables import metadata as analytics_tables
from services.kit.auth import LocalSigner
from services.kit.database import Database, insert_all
from services.kit.events.connection import servers
from services.kit.events.streams import stream_name
from services.kit.migrations import migrate
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.harness.servers import (
    PostgresHandle,
    find_nats_server,
    provide_nats,
    provide_postgres,
    provide_redis,
)

# Action → visible p99 on PostgreSQL, and the rebuild's rate as a share of raw.
FRESHNESS_TARGET = 0.250
REBUILD_TARGET = 0.5
OWNER = "bench-owner"
REBUILT = re.compile(r"rebuilt ([\d,]+) events in ([\d.]+)s")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {os.cpu_count()} cores"


@dataclass
class Stack:
    """The servers of one run and the environment its service processes share."""

    workdir: Path
    env: dict[str, str]
    signer: LocalSigner
    nats_url: str
    nats_pid: int | None


def environment(workdir: Path, nats_url: str, redis_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("STUDYHALL_")},
        "STUDYHALL_DATA_DIR": str(workdir / "data"),
        "STUDYHALL_NATS_URL": nats_url,
        "STUDYHALL_REDIS_URL": redis_url,
        "STUDYHALL_LOG_LEVEL": "WARNING",
        # Limits on, as in production, high enough never to refuse the bench's own calls.
        "STUDYHALL_RATE_LIMIT_PER_CALLER": "100000/second",
        "STUDYHALL_RATE_LIMIT_PER_COMMUNITY": "100000/second",
    }


def database_url(postgres: PostgresHandle | None, workdir: Path, name: str) -> str:
    if postgres is None:
        return f"sqlite+aiosqlite:///{workdir / 'data'}/{name}.db"
    return postgres.create_database(f"bench_{name}_{uuid.uuid4().hex[:8]}")


def start(
    services: contextlib.ExitStack,
    stack: Stack,
    service: str,
    mode: str,
    extra: dict[str, str],
) -> tuple[int, int]:
    """One process of `service` in `mode`; (its gRPC port, its pid) once it serves."""
    port = free_port()
    prefix = f"STUDYHALL_{service.upper()}"
    child = services.enter_context(
        process(
            [sys.executable, "-m", f"services.{service}", mode],
            {
                **stack.env,
                **extra,
                f"{prefix}_GRPC_PORT": str(port),
                f"{prefix}_METRICS_PORT": str(free_port()),
            },
            stack.workdir / f"{service}-{mode}-{port}.log",
        )
    )
    wait_for_port(port, child)
    asyncio.run(wait_serving(port, f"{service} {mode}"))
    return port, child.pid


def start_analytics(
    services: contextlib.ExitStack, stack: Stack, url: str, *, api: bool
) -> tuple[int | None, dict[str, int]]:
    """Analytics' consumers in a process of their own, and with `api` its API process
    (started first: each migrates at start, one at a time). The API's port, and the pid of
    each process by name."""
    extra = {
        "STUDYHALL_ANALYTICS_DATABASE_URL": url,
        "STUDYHALL_CONSUMERS": "external",
    }
    pids: dict[str, int] = {}
    port = None
    if api:
        port, pids["analytics api"] = start(services, stack, "analytics", "serve", extra)
    pids["analytics consumers"] = start(services, stack, "analytics", "consume", extra)[1]
    return port, pids


async def caught_up(nats_url: str, prefix: str = "analytics", seconds: float = 3600) -> float:
    """Until every durable consumer named `prefix`* has nothing pending or unacknowledged
    on any stream; the seconds it took."""
    started = time.perf_counter()
    client = await nats.connect(servers(nats_url))
    try:
        js = client.jetstream()
        while True:
            busy = 0
            found = 0
            for service in STREAMS:
                for info in await js.consumers_info(stream_name(service)):
                    if (info.name or "").startswith(prefix):
                        found += 1
                        busy += (info.num_pending or 0) + (info.num_ack_pending or 0)
            if found and not busy:
                return time.perf_counter() - started
            if time.perf_counter() - started > seconds:
                raise SystemExit(f"analytics' consumers still have {busy:,} events to go")
            await asyncio.sleep(0.2)
    finally:
        await client.close()


# --------------------------------------------------------------------------------------------
# (a) freshness
# --------------------------------------------------------------------------------------------


@dataclass
class Freshness:
    store: str
    visible: Latency
    join_call: Latency
    actions: int
    unseen: int
    background_rate: float
    load: str
    cpu: CpuUse


async def measure_freshness(
    options: argparse.Namespace,
    members_port: int,
    analytics_port: int,
    stack: Stack,
    pids: dict[str, int],
) -> tuple[Latency, Latency, int, int, float, CpuUse]:
    owner = [("authorization", f"Bearer {stack.signer.mint(OWNER, ttl_seconds=7200)}")]
    actions = int(options.seconds / options.every) + 1
    joiners = [
        stack.signer.mint(f"joiner-{uuid.uuid4().hex[:12]}", ttl_seconds=7200)
        for _ in range(actions)
    ]
    population = Population(communities=options.communities, members=options.members)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{members_port}") as members_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{analytics_port}") as analytics_channel,
        Seeder.connect(stack.nats_url) as seeder,
    ):
        people = members_grpc.MembersServiceStub(members_channel)
        figures = pb_grpc.AnalyticsServiceStub(analytics_channel)
        created = await people.CreateCommunity(
            members_pb.CreateCommunityRequest(
                name="Watched group",
                slug=f"watched-{uuid.uuid4().hex[:8]}",
                topic="english",
                visibility=members_pb.VISIBILITY_PUBLIC,
                join_policy=members_pb.JOIN_POLICY_OPEN,
            ),
            metadata=owner,
            timeout=10,
        )
        community_id = created.community.id
        await seeder.publish_all(population.opening(time.time()))
        await caught_up(stack.nats_url, seconds=600)
        stats = pb.GetCommunityStatsRequest(community_id=community_id)

        async def members_now() -> int:
            reply = await figures.GetCommunityStats(stats, metadata=owner, timeout=5)
            return int(reply.stats.member_count)

        for _ in range(600):  # analytics learns the owner's role from members' events
            with contextlib.suppress(grpc.RpcError):
                if await members_now() >= 1:
                    break
            await asyncio.sleep(0.05)
        else:
            raise SystemExit("analytics never counted the watched community's owner")
        base = await members_now()
        stop = asyncio.Event()
        load = asyncio.create_task(
            seeder.at_rate(population, options.rate, options.seconds + 30, stop=stop)
        )
        await asyncio.sleep(2)  # the load reaches its rate before the first action
        started_at: list[float] = []
        seen_at: dict[int, float] = {}
        call_seconds: list[float] = []
        polling = True

        async def poll() -> None:
            while polling or len(seen_at) < len(started_at):
                tick = time.perf_counter()
                with contextlib.suppress(grpc.RpcError):
                    count = await members_now() - base
                    now = time.perf_counter()
                    for number in range(count):
                        seen_at.setdefault(number, now)
                await asyncio.sleep(max(0.0, options.poll - (time.perf_counter() - tick)))
                if not polling and time.perf_counter() - last_action > 30:
                    return

        async def act(token: str) -> None:
            began = time.perf_counter()
            started_at.append(began)
            await people.JoinCommunity(
                members_pb.JoinCommunityRequest(community_id=community_id),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=10,
            )
            call_seconds.append(time.perf_counter() - began)

        last_action = time.perf_counter()
        meter = CpuMeter(dict(pids))
        spies = contextlib.ExitStack()
        if options.profile:
            for name in ("analytics api", "analytics consumers"):
                suffix = name.split()[-1]
                spies.enter_context(
                    profiling(pids[name], options.seconds, f"{options.profile}.{suffix}")
                )
        poller = asyncio.create_task(poll())
        calls = []
        first = time.perf_counter()
        for number, token in enumerate(joiners):
            await asyncio.sleep(max(0.0, first + number * options.every - time.perf_counter()))
            last_action = time.perf_counter()
            calls.append(asyncio.create_task(act(token)))
        await asyncio.gather(*calls)
        cpu = meter.stop()
        spies.close()
        polling = False
        await poller
        stop.set()
        published = await load
    # An action never seen counts as slower than every one seen (it is in the percentiles).
    visible = [seen_at.get(n, float("inf")) - began for n, began in enumerate(started_at)]
    return (
        Latency.of(visible),
        Latency.of(call_seconds),
        len(started_at),
        len([n for n in range(len(started_at)) if n not in seen_at]),
        published.rate,
        cpu,
    )


def freshness(options: argparse.Namespace, store: str, workdir: Path) -> Freshness:
    with contextlib.ExitStack() as servers:
        nats_server = servers.enter_context(provide_nats(workdir / "nats"))
        redis_server = servers.enter_context(provide_redis(workdir / "redis"))
        postgres = (
            servers.enter_context(provide_postgres(workdir / "postgres"))
            if store == "postgresql"
            else None
        )
        stack = Stack(
            workdir,
            environment(workdir, nats_server.url, redis_server.url),
            LocalSigner.ensure(workdir / "data"),
            nats_server.url,
            nats_server.pid,
        )
        members_port, members_pid = start(
            servers,
            stack,
            "members",
            "serve",
            {
                "STUDYHALL_MEMBERS_DATABASE_URL": database_url(postgres, workdir, "members"),
                "STUDYHALL_CONSUMERS": "external",
            },
        )
        analytics_port, pids = start_analytics(
            servers, stack, database_url(postgres, workdir, "analytics"), api=True
        )
        assert analytics_port is not None
        pids["members"] = members_pid
        if nats_server.pid is not None:
            pids["nats-server"] = nats_server.pid
        visible, call, actions, unseen, rate, cpu = asyncio.run(
            measure_freshness(options, members_port, analytics_port, stack, pids)
        )
        return Freshness(store, visible, call, actions, unseen, rate, load_average(), cpu)


# --------------------------------------------------------------------------------------------
# (b) rebuild
# --------------------------------------------------------------------------------------------


@dataclass
class Rebuild:
    store: str
    events: int
    seed_rate: float
    live_seconds: float
    stream_messages: int
    raw_seconds: float
    rebuild_seconds: float
    rebuild_events: int
    matches: bool
    output: str
    load: str
    rows: int = 0
    insert_seconds: float = 0.0

    @property
    def raw_rate(self) -> float:
        return self.stream_messages / self.raw_seconds

    @property
    def rebuild_rate(self) -> float:
        return self.stream_messages / self.rebuild_seconds

    @property
    def writing_rate(self) -> float:
        """The second baseline: raw consume, then a bulk insert of the rebuilt rows."""
        return self.stream_messages / (self.raw_seconds + self.insert_seconds)


async def insert_rows(source_url: str, target_url: str) -> tuple[int, float]:
    """Every row of the rebuilt store at `source_url`, inserted into a freshly migrated
    store at `target_url` the fastest way it takes them (COPY on PostgreSQL, executemany on
    SQLite): (rows, seconds of the inserts)."""
    source, target = Database(source_url), Database(target_url)
    try:
        await migrate(target, ANALYTICS.migrations, service="analytics")
        tables: dict[str, list[dict[str, object]]] = {}
        async with source.read() as session:
            for table in analytics_tables.sorted_tables:
                found = await session.execute(table.select())
                tables[table.name] = [dict(row._mapping) for row in found]
        async with target.write() as session:  # the migration's own rows go first
            for table in reversed(analytics_tables.sorted_tables):
                await session.execute(table.delete())
        started = time.perf_counter()
        for table in analytics_tables.sorted_tables:
            rows = tables[table.name]
            for at in range(0, len(rows), 5000):
                async with target.write() as session:
                    await insert_all(session, table, rows[at : at + 5000])
        return sum(map(len, tables.values())), time.perf_counter() - started
    finally:
        await source.close()
        await target.close()


async def raw_consume(nats_url: str) -> tuple[int, float]:
    """Every message of the streams, pulled by an ephemeral consumer with no acks in
    batches of 2,000 and not decoded: (messages, seconds)."""
    client = await nats.connect(servers(nats_url), name="bench-raw-consume")
    messages = 0
    started = time.perf_counter()
    try:
        js = client.jetstream()
        for service in STREAMS:
            stream = stream_name(service)
            last = (await js.stream_info(stream)).state.last_seq
            if not last:
                continue
            pull = await js.pull_subscribe(
                "",
                stream=stream,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=60.0,
                    max_waiting=1,
                ),
            )
            try:
                while True:
                    try:
                        batch = await pull.fetch(2000, timeout=1.0)
                    except (NatsTimeout, TimeoutError):
                        break
                    messages += len(batch)
                    if batch and batch[-1].metadata.sequence.stream >= last:
                        break
            finally:
                await pull.unsubscribe()
    finally:
        await client.close()
    return messages, time.perf_counter() - started


def rebuild(options: argparse.Namespace, store: str, workdir: Path) -> Rebuild:
    with contextlib.ExitStack() as servers:
        nats_server = servers.enter_context(provide_nats(workdir / "nats"))
        redis_server = servers.enter_context(provide_redis(workdir / "redis"))
        postgres = (
            servers.enter_context(provide_postgres(workdir / "postgres"))
            if store == "postgresql"
            else None
        )
        stack = Stack(
            workdir,
            environment(workdir, nats_server.url, redis_server.url),
            LocalSigner.ensure(workdir / "data"),
            nats_server.url,
            nats_server.pid,
        )
        population = Population(communities=options.communities, members=options.members)
        print(f"seeding {options.events:,} events over {options.days:.0f} days ...", flush=True)
        seeded = asyncio.run(
            seed_history(stack.nats_url, population, options.events, days=options.days)
        )
        print(
            f"seeded {seeded.events:,} events in {seeded.seconds:.0f} s ({seeded.rate:,.0f}/s)",
            flush=True,
        )
        live_url = database_url(postgres, workdir, "analytics")
        start_analytics(servers, stack, live_url, api=False)
        live_seconds = asyncio.run(caught_up(stack.nats_url))
        print(f"live consumers caught up in {live_seconds:.0f} s", flush=True)
        messages, raw_seconds = asyncio.run(raw_consume(stack.nats_url))
        print(f"raw pull-consume: {messages:,} messages in {raw_seconds:.1f} s", flush=True)
        into = database_url(postgres, workdir, "analytics_rebuilt")
        command = [sys.executable, "-m", "services.analytics", "rebuild", "--into", into]
        env = {**stack.env, "STUDYHALL_ANALYTICS_DATABASE_URL": live_url}
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        spy = (
            subprocess.Popen(
                [
                    *(str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "200"),
                    *("--pid", str(child.pid), "--format", "raw", "-o", options.profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if options.profile
            else None
        )
        output, _ = child.communicate()
        if spy is not None:
            spy.wait(timeout=60)
        found = REBUILT.search(output)
        if found is None:
            raise SystemExit(f"the rebuild printed no rate:\n{output}")
        copy = database_url(postgres, workdir, "analytics_copy")
        rows, insert_seconds = asyncio.run(insert_rows(into, copy))
        print(
            f"bulk insert of the rebuilt rows: {rows:,} in {insert_seconds:.1f} s",
            flush=True,
        )
        return Rebuild(
            rows=rows,
            insert_seconds=insert_seconds,
            store=store,
            events=options.events,
            seed_rate=seeded.rate,
            live_seconds=live_seconds,
            stream_messages=messages,
            raw_seconds=raw_seconds,
            rebuild_seconds=float(found.group(2)),
            rebuild_events=int(found.group(1).replace(",", "")),
            matches=child.returncode == 0 and "matches the live one" in output,
            output=output.strip(),
            load=load_average(),
        )


# --------------------------------------------------------------------------------------------


def report_freshness(options: argparse.Namespace, result: Freshness) -> None:
    ms = 1000
    met = "met" if result.visible.p99 < FRESHNESS_TARGET else "NOT met"

    def shown(seconds: float) -> str:
        return f"{seconds * ms:6.1f} ms" if seconds != float("inf") else "never seen"

    print(
        f"\nfreshness, {result.store}: {result.actions} joins through members' API, one every "
        f"{options.every * ms:.0f} ms, GetCommunityStats polled every {options.poll * ms:.0f} ms, "
        f"background {result.background_rate:,.0f} events/s ({options.rate:,.0f} asked) "
        f"across {options.communities:,} communities"
    )
    print(
        f"  action -> visible  p50 {shown(result.visible.p50)}  p99 "
        f"{shown(result.visible.p99)}  max {shown(result.visible.max)}"
        + (f"  ({result.unseen} not seen within 30 s of the last)" if result.unseen else "")
        + (
            f"  target p99 < {FRESHNESS_TARGET * ms:.0f} ms: {met}"
            if result.store == "postgresql"
            else ""
        )
    )
    print(
        f"  of which the JoinCommunity call  p50 {result.join_call.p50 * ms:6.1f} ms  p99 "
        f"{result.join_call.p99 * ms:6.1f} ms"
    )
    print(f"  {result.cpu.describe()} (this process: the seeder and the polls)")
    print(f"  load average after: {result.load}")


def report_rebuild(result: Rebuild) -> None:
    ratio = result.rebuild_rate / result.raw_rate
    print(
        f"\nrebuild, {result.store}: {result.events:,} events seeded ({result.seed_rate:,.0f}/s), "
        f"{result.stream_messages:,} messages in the streams; live consumers caught up in "
        f"{result.live_seconds:.0f} s ({result.stream_messages / result.live_seconds:,.0f}/s)"
    )
    print(
        f"  raw nats-py pull-consume  {result.raw_rate:9,.0f} messages/s "
        f"({result.raw_seconds:.1f} s)"
    )
    print(
        f"  analytics rebuild         {result.rebuild_rate:9,.0f} messages/s "
        f"({result.rebuild_seconds:.1f} s; {result.rebuild_events:,} events applied by its "
        "consumers)"
    )
    print(
        f"  raw consume + bulk insert {result.writing_rate:9,.0f} messages/s "
        f"({result.raw_seconds:.1f} + {result.insert_seconds:.1f} s for {result.rows:,} rows)"
    )
    writing = result.rebuild_rate / result.writing_rate
    print(
        f"  ratio rebuild/raw {ratio:.2f} (target >= {REBUILD_TARGET}: "
        f"{'met' if ratio >= REBUILD_TARGET else 'NOT met'}); rebuild/(raw + insert) "
        f"{writing:.2f} (target >= {REBUILD_TARGET}: "
        f"{'met' if writing >= REBUILD_TARGET else 'NOT met'}); rebuilt store "
        f"{'matches the live one exactly' if result.matches else 'DIFFERS from the live one'}"
    )
    for line in result.output.splitlines():
        if line.startswith(("the rebuilt", "DIFFERENT", "    ", "  wrote")):
            print(f"  | {line}")
    print(f"  load average after: {result.load}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store",
        default="postgresql,sqlite",
        help="stores, comma separated; freshness runs on each, the rebuild on the first",
    )
    parser.add_argument("--only", choices=("freshness", "rebuild"))
    parser.add_argument("--communities", type=int, default=1_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="background events/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="freshness: how long")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between actions")
    parser.add_argument("--poll", type=float, default=0.005, help="seconds between polls")
    parser.add_argument("--events", type=int, default=200_000, help="rebuild: history size")
    parser.add_argument("--days", type=float, default=30.0, help="rebuild: history span")
    parser.add_argument(
        "--profile",
        help="py-spy raw profiles: the rebuild's to PATH; freshness: analytics' API and "
        "consumers processes to PATH.api and PATH.consumers",
    )
    options = parser.parse_args()
    stores = [store for store in options.store.split(",") if store]
    if not stores or set(stores) - {"sqlite", "postgresql"}:
        raise SystemExit("--store: sqlite and/or postgresql, comma separated")
    facts = machine_facts(find_nats_server()[0])
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    print(f"load average before: {load_average()} (a machine shared with other work)")
    fresh: list[Freshness] = []
    rebuilt: Rebuild | None = None
    if options.only != "rebuild":
        for store in stores:
            with tempfile.TemporaryDirectory(prefix="bench-analytics-") as scratch:
                fresh.append(freshness(options, store, Path(scratch)))
            report_freshness(options, fresh[-1])
    if options.only != "freshness":
        with tempfile.TemporaryDirectory(prefix="bench-analytics-") as scratch:
            rebuilt = rebuild(options, stores[0], Path(scratch))
        report_rebuild(rebuilt)


if __name__ == "__main__":
    main()
