"""JoinCommunity under load, next to a raw grpc.aio echo server measured in the same run.

    make bench-members                              # SQLite, the embedded default
    make bench-members BENCH_ARGS="--store postgresql --seconds 20"

Then it runs `bench.leaderboard` (top-10 read p99 from Redis next to the same read in SQL)
and `bench.segments` (segment count time over 100,000 members) on the same store.

The members database is seeded with 10,000 communities and 100,000 members in one of them
(bulk inserts into a schema built by the service's own migrations), then the members
service runs as Kubernetes runs it: `--replicas` API processes, the outbox relay
(publishing to a real nats-server) and the consumers each in a process of their own, all on
this machine's cores while this process offers JoinCommunity calls from new users into the
big community, `--concurrency` at a time, spread over the replicas. The baseline is as many
bare grpc.aio servers answering the same request with an empty response, offered the same
load by the same client. A second baseline, "echo + token", is the same echo verifying each
caller's token first, as the service does (ES256, no cache): the ratio of JoinCommunity's
rate to it is the figure to watch (target: at least 0.5), the bare echo's shows what the
token alone costs on these cores. After the load the outbox must drain:
every acknowledged join's event is published.

Each run also prints what a call costs the whole machine, every process and the client
counted. While the cores are busy, rates stand in inverse proportion to those costs: 0.5 of
the echo + token rate leaves a join twice what an echo + token call costs the machine. On
PostgreSQL, whose backends share the cores, the target is the members processes' CPU per
join: at most twice the echo + token servers' CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from bench.support import (
    BROKER,
    Method,
    Result,
    drain,
    machine_facts,
    offer_calls,
    profiling,
    store_database,
    wait_serving,
)
from services.kit.auth import LocalSigner, TokenVerifier
from services.kit.database import Database
from services.kit.migrations import migrate
from services.kit.settings import load_settings
from services.members.settings import MembersSettings
from services.members.store.tables import communities, memberships, outbox
from studyhall.members.v1 import members_service_pb2 as pb
from tests.harness.servers import (
    find_nats_server,
    provide_nats,
    provide_redis,
)

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "members" / "store" / "migrations"
JOIN = "/studyhall.members.v1.MembersService/JoinCommunity"
# JoinCommunity's rate as a share of the echo + token's.
TARGET = 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def seed(url: str, community_count: int, big_members: int) -> str:
    """Communities and one big community's members, inserted in bulk; returns its id."""
    database = Database(url)
    await migrate(database, MIGRATIONS, service="members")
    now = datetime.now(UTC)
    big = str(uuid.uuid4())
    rows: list[dict[str, Any]] = [
        {
            "id": big if index == 0 else str(uuid.uuid4()),
            "name": f"Study group {index}",
            "slug": f"group-{index}",
            "topic": ("english", "python", "exams", "reading")[index % 4],
            "mission": "",
            "audience": "",
            "tags": [],
            "visibility": 1,
            "join_policy": 1,
            "owner_user_id": f"owner-{index}",
            "created_at": now - timedelta(seconds=community_count - index),
            "version": 1,
            "locale": "en",
            "time_zone": "UTC",
            "join_questions": [],
        }
        for index in range(community_count)
    ]
    async with database.write() as session:
        for start in range(0, len(rows), 5000):
            await session.execute(communities.insert(), rows[start : start + 5000])
        owners = [
            {
                "community_id": row["id"],
                "user_id": row["owner_user_id"],
                "role": 4,
                "joined_at": now,
                "active": True,
                "version": 1,
            }
            for row in rows
        ]
        for start in range(0, len(owners), 5000):
            await session.execute(memberships.insert(), owners[start : start + 5000])
        for start in range(0, big_members, 5000):
            batch = [
                {
                    "community_id": big,
                    "user_id": f"seed-member-{number}",
                    "role": 1,
                    "joined_at": now,
                    "active": True,
                    "version": 1,
                }
                for number in range(start, min(start + 5000, big_members))
            ]
            await session.execute(memberships.insert(), batch)
    await database.close()
    return big


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {timeout:.0f}s")


async def offer_joins(
    ports: list[int],
    server_pids: dict[str, int],
    community_id: str,
    tokens: list[str],
    seconds: float,
    concurrency: int,
    *,
    reuse_tokens: bool = False,
) -> Result:
    """New users joining `community_id`, `concurrency` calls in flight, for `seconds`, spread
    evenly over the replicas listening on `ports` (as a Kubernetes Service spreads them).

    The echo verifies nothing, so it may go round the same tokens (`reuse_tokens`): only the
    joins need a user of their own per call."""
    request = pb.JoinCommunityRequest(community_id=community_id)
    return await offer_calls(
        ports,
        server_pids,
        Method(JOIN, pb.JoinCommunityRequest, pb.JoinCommunityResponse),
        lambda: request,
        tokens,
        seconds,
        concurrency,
        reuse_tokens=reuse_tokens,
        exhausted="ran out of pre-signed users: raise --users",
    )


# ---- the baseline: a bare grpc.aio server ---------------------------------------------------


def _uncached_verifier(settings: MembersSettings) -> TokenVerifier:
    return TokenVerifier(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        algorithms=settings.algorithms,
        key_file=settings.effective_key_file(),
        cache_size=0,
    )


async def serve_echo(port: int, *, verify_tokens: bool) -> None:
    """The raw baseline; with `verify_tokens`, it first verifies the caller's token as the
    service does, with no cache, so that every call pays for one ES256 check."""
    verifier = _uncached_verifier(load_settings(MembersSettings)) if verify_tokens else None

    async def join(request: pb.JoinCommunityRequest, context: Any) -> pb.JoinCommunityResponse:
        if verifier is not None:
            metadata = dict(context.invocation_metadata() or ())
            await verifier.verify(str(metadata["authorization"]).removeprefix("Bearer "))
        return pb.JoinCommunityResponse()

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        join,
        request_deserializer=pb.JoinCommunityRequest.FromString,
        response_serializer=pb.JoinCommunityResponse.SerializeToString,
    )
    # Served under the same method path, so the client side is byte for byte the same.
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "studyhall.members.v1.MembersService", {"JoinCommunity": handler}
            )
        ]
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as output:
        child = subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def run(options: argparse.Namespace, workdir: Path) -> None:
    data_dir = workdir / "data"
    signer = LocalSigner.ensure(data_dir)
    facts = machine_facts(find_nats_server()[0])
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    with contextlib.ExitStack() as stack:
        nats_server = stack.enter_context(provide_nats(workdir / "nats"))
        redis_server = stack.enter_context(provide_redis(workdir / "redis"))
        database_url = stack.enter_context(
            store_database(options.store, workdir, data_dir / "members.db", "bench_members")
        )
        seeding = time.perf_counter()
        big = asyncio.run(seed(database_url, options.communities, options.members))
        print(
            f"seeded {options.communities:,} communities and {options.members:,} members of one "
            f"in {time.perf_counter() - seeding:.0f} s ({options.store})"
        )
        minting = time.perf_counter()
        tokens = [
            signer.mint(f"joiner-{uuid.uuid4().hex[:12]}", ttl_seconds=3600)
            for _ in range(options.users)
        ]
        print(f"signed {len(tokens):,} user tokens in {time.perf_counter() - minting:.1f} s")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STUDYHALL_")},
            "STUDYHALL_DATA_DIR": str(data_dir),
            "STUDYHALL_NATS_URL": nats_server.url,
            "STUDYHALL_REDIS_URL": redis_server.url,
            "STUDYHALL_MEMBERS_DATABASE_URL": database_url,
            "STUDYHALL_LOG_LEVEL": "WARNING",
            # Limits on, as in production, so their cost is measured; high enough that the
            # load of the measurement itself is never refused.
            "STUDYHALL_RATE_LIMIT_PER_CALLER": "100000/second",
            "STUDYHALL_RATE_LIMIT_PER_COMMUNITY": "100000/second",
        }
        echo_rates: list[Result] = []
        signed_rates: list[Result] = []
        join_rates: list[Result] = []
        used = 0
        for round_number in range(options.rounds):
            for verify, rates in ((False, echo_rates), (True, signed_rates)):
                with contextlib.ExitStack() as servers:
                    pids, ports = start_echo(
                        servers, env, workdir, round_number, options.replicas, verify=verify
                    )
                    rates.append(
                        asyncio.run(
                            offer_joins(
                                ports,
                                pids,
                                big,
                                tokens,
                                options.seconds,
                                options.concurrency,
                                reuse_tokens=True,
                            )
                        )
                    )
            with contextlib.ExitStack() as servers:
                pids, ports = start_members(servers, env, workdir, round_number, options.replicas)
                if nats_server.pid is not None:
                    pids[BROKER] = nats_server.pid
                if options.profile:
                    servers.enter_context(
                        profiling(
                            pids["api 0"], options.seconds, f"{options.profile}.{round_number}"
                        )
                    )
                share = tokens[used:]
                result = asyncio.run(
                    offer_joins(ports, pids, big, share, options.seconds, options.concurrency)
                )
                used += result.latency.count + result.errors + 100
                result.backlog, result.drain_seconds = drain(database_url, outbox)
                join_rates.append(result)
    report(options, echo_rates, signed_rates, join_rates)


def start_echo(
    stack: contextlib.ExitStack,
    env: dict[str, str],
    workdir: Path,
    round_number: int,
    replicas: int,
    *,
    verify: bool,
) -> tuple[dict[str, int], list[int]]:
    """`replicas` echo servers; with `verify`, each checks every caller's token first."""
    pids: dict[str, int] = {}
    ports = [free_port() for _ in range(replicas)]
    kind = "signed" if verify else "echo"
    for replica, port in enumerate(ports):
        echo = stack.enter_context(
            process(
                [
                    *(sys.executable, "-m", "bench.members", "--serve-echo", str(port)),
                    *(("--verify-tokens",) if verify else ()),
                ],
                env,
                workdir / f"{kind}-{round_number}-{replica}.log",
            )
        )
        wait_for_port(port, echo)
        pids[f"{kind} {replica}"] = echo.pid
    return pids, ports


def start_members(
    stack: contextlib.ExitStack,
    env: dict[str, str],
    workdir: Path,
    round_number: int,
    replicas: int,
) -> tuple[dict[str, int], list[int]]:
    """The members service as Kubernetes runs it (deploy/k8s/base): API replicas with the
    relay and the consumers in processes of their own; all of them on this machine's cores.
    Returns every process's pid and the API replicas' ports."""
    pids: dict[str, int] = {}
    api_ports: list[int] = []
    roles = [("relay", "relay"), ("consume", "consumer")] + [
        ("serve", f"api {n}") for n in range(replicas)
    ]
    for mode, name in roles:
        port = free_port()
        child = stack.enter_context(
            process(
                [sys.executable, "-m", "services.members", mode],
                {
                    **env,
                    "STUDYHALL_RELAY": "external",
                    "STUDYHALL_CONSUMERS": "external",
                    "STUDYHALL_MEMBERS_GRPC_PORT": str(port),
                    "STUDYHALL_MEMBERS_METRICS_PORT": str(free_port()),
                },
                workdir / f"members-{round_number}-{name.replace(' ', '-')}.log",
            )
        )
        wait_for_port(port, child)
        asyncio.run(wait_serving(port, "members"))
        pids[name] = child.pid
        if mode == "serve":
            api_ports.append(port)
    return pids, api_ports


def report(
    options: argparse.Namespace, echo: list[Result], signed: list[Result], join: list[Result]
) -> None:
    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    shape = (
        f"{options.concurrency} concurrent callers, {options.seconds:.0f} s x {options.rounds} "
        f"rounds, store {options.store}, {options.replicas} API replica(s) and as many echo "
        "servers, the relay and the consumers in processes of their own"
    )
    print(
        f"\nJoinCommunity into a community of {options.members:,} members among "
        f"{options.communities:,} communities; {shape}"
    )
    for name, results in (
        ("grpc.aio echo", echo),
        ("echo + token", signed),
        ("JoinCommunity", join),
    ):
        rates = ", ".join(f"{r.rate:.0f}" for r in results)
        p99 = median([r.latency.p99 * 1000 for r in results])
        p50 = median([r.latency.p50 * 1000 for r in results])
        errors = sum(r.errors for r in results)
        cpu = median([r.server_cpu_ms for r in results])
        print(
            f"{name:<15} {median([r.rate for r in results]):7.0f} calls/s (rounds: {rates})  "
            f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  server CPU {cpu:5.2f} ms/call  "
            f"errors {errors}"
        )
    last = join[-1]
    print(
        "server CPU per join by process (last round): "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in last.cpu_by_process.items())
    )
    # The members processes (API replicas, relay, consumers; the broker left out).
    members_cpu = median([r.server_cpu_ms for r in join])
    token_cpu = median([r.server_cpu_ms for r in signed])
    print(
        f"members processes' CPU per join {members_cpu:.2f} ms, "
        f"{members_cpu / token_cpu:.1f} x the echo + token servers' {token_cpu:.2f} ms per call "
        "(target <= 2 x)"
    )
    cores = os.cpu_count() or 1
    print(
        "whole machine per call, every process and the client counted: "
        + ", ".join(
            f"{name} {median([r.per_call_ms(r.busy_cores) for r in results]):.2f} ms "
            f"(client {median([r.per_call_ms(r.client_cores) for r in results]):.2f} ms, "
            f"{median([r.busy_cores for r in results]):.2f} of {cores} cores busy)"
            for name, results in (("echo", echo), ("echo + token", signed), ("join", join))
        )
    )
    budget = median([r.per_call_ms(r.busy_cores) for r in signed]) / TARGET
    print(
        f"with the cores busy, {TARGET:.2f} of the echo + token rate leaves a join "
        f"{budget:.2f} ms "
        "of the whole machine"
    )
    print(
        "outbox when the load stopped: "
        + ", ".join(f"{r.backlog} events, published {r.drain_seconds:.1f} s later" for r in join)
    )
    for name, baseline, target in (
        ("echo", echo, ""),
        ("echo + token", signed, f" target >= {TARGET:.2f}"),
    ):
        ratios = [j.rate / b.rate for j, b in zip(join, baseline, strict=True)]
        print(
            f"ratio JoinCommunity/{name}: median {median(ratios):.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)};{target or ' for reference'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--communities", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--replicas", type=int, default=2, help="API processes (and echo servers) side by side"
    )
    parser.add_argument("--users", type=int, default=60_000, help="pre-signed joiners")
    parser.add_argument(
        "--profile",
        default="",
        help="py-spy raw profile of the first members API replica, one file per round: PATH.N",
    )
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--verify-tokens", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_echo:
        asyncio.run(serve_echo(options.serve_echo, verify_tokens=options.verify_tokens))
        return
    with tempfile.TemporaryDirectory(prefix="bench-members-") as scratch:
        run(options, Path(scratch))
    # The read side of the members service: leaderboard top-10 reads and segment counts over
    # 100,000 members, each against its own baseline (see those modules).
    for module in ("bench.leaderboard", "bench.segments"):
        print(f"\n== {module} (--store {options.store})", flush=True)
        subprocess.run([sys.executable, "-m", module, "--store", options.store], check=True)


if __name__ == "__main__":
    main()
