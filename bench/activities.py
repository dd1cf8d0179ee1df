"""Registrations into a 10,000-seat activity under load, next to the echo + token baseline
and JoinCommunity, measured in the same run.

    make bench-activities                              # SQLite, the embedded default
    make bench-activities BENCH_ARGS="--seconds 10 --rounds 1"
    make bench-activities BENCH_ARGS="--store postgresql"

Each round offers three loads from the same client, `--concurrency` calls in flight, every
call signed by a user of its own (so each pays a full ES256 check, as a caller seen for the
first time does):

- echo + token: `--replicas` bare grpc.aio servers that verify the caller's token and answer
  JoinCommunity with an empty response (bench.members' baseline);
- JoinCommunity: the members service as bench.members runs it (API replicas, the relay and
  the consumers in processes of their own), new users joining a community of `--members`;
- Register: the events service as Kubernetes runs it, `--replicas` API processes and the
  outbox relay (publishing to a real nats-server) each in a process of their own, members of
  the community registering for one activity of `--seats` seats planned for the round (so
  every round starts with every seat free; a round that fills it goes on to the waitlist).

Events learns communities and roles from members' events; here its projection tables
(`access_communities`, `access_roles`) are seeded in bulk instead, with `--communities`
communities and the registering members. Its consumers are not started: nothing arrives for
them while registrations are offered. After the load the outbox must drain, every
acknowledged registration must have its Registered published, and the activity's seats
taken must equal the registrations seated.

The figures to watch are the ratios Register/echo+token and JoinCommunity/echo+token of one
round (target: Register's at least JoinCommunity's): rates measured minutes apart on a
shared machine are not comparable, ratios within a round are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from bench.members import (
    free_port,
    offer_joins,
    process,
    start_echo,
    start_members,
    wait_for_port,
)
from bench.members import seed as seed_members
from bench.support import (
    BROKER,
    Method,
    Result,
    drain,
    machine_facts,
    offer_calls,
    profiling,
    wait_serving,
)
from services.events.store import tables as events_tables
from services.kit.auth import LocalSigner
from services.kit.database import Database
from services.kit.migrations import migrate
from services.members.store.tables import outbox as members_outbox
from studyhall.events.v1 import activities_events_pb2 as events_pb
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc
from tests.harness.servers import (
    find_nats_server,
    provide_nats,
    provide_postgres,
    provide_redis,
)

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "events" / "store" / "migrations"
REGISTER = Method(
    "/studyhall.events.v1.ActivitiesService/Register", pb.RegisterRequest, pb.RegisterResponse
)
REGISTERED = events_pb.Registered.DESCRIPTOR.full_name
BATCH = 5000
OWNER = "owner-0"


async def seed_events(
    url: str, community_id: str, community_count: int, registrants: list[str]
) -> None:
    """Events' projection of members (the community among `community_count`, its owner and
    `registrants` as members), inserted in bulk into a schema built by the service's own
    migrations."""
    access = events_tables.access
    database = Database(url)
    await migrate(database, MIGRATIONS, service="events")
    communities = [
        {
            "community_id": community_id if index == 0 else str(uuid.uuid4()),
            "visibility": 1,
            "version": 1,
            "archived": False,
        }
        for index in range(community_count)
    ]
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
        for number, user_id in enumerate([OWNER, *registrants])
    ]
    async with database.write() as session:
        for table, rows in ((access.communities, communities), (access.roles, roles)):
            for start in range(0, len(rows), BATCH):
                await session.execute(table.insert(), rows[start : start + BATCH])
    await database.close()


def start_events(
    stack: contextlib.ExitStack,
    env: dict[str, str],
    workdir: Path,
    round_number: int,
    replicas: int,
) -> tuple[dict[str, int], list[int]]:
    """The events service as Kubernetes runs it: API replicas and the outbox relay in
    processes of their own. Returns every process's pid and the API replicas' ports."""
    pids: dict[str, int] = {}
    api_ports: list[int] = []
    for mode, name in [("relay", "relay")] + [("serve", f"api {n}") for n in range(replicas)]:
        port = free_port()
        child = stack.enter_context(
            process(
                [sys.executable, "-m", "services.events", mode],
                {
                    **env,
                    "STUDYHALL_RELAY": "external",
                    "STUDYHALL_CONSUMERS": "external",
                    "STUDYHALL_EVENTS_GRPC_PORT": str(port),
                    "STUDYHALL_EVENTS_METRICS_PORT": str(free_port()),
                },
                workdir / f"events-{round_number}-{name.replace(' ', '-')}.log",
            )
        )
        wait_for_port(port, child)
        asyncio.run(wait_serving(port, "events"))
        pids[name] = child.pid
        if mode == "serve":
            api_ports.append(port)
    return pids, api_ports


async def plan_activity(port: int, community_id: str, owner_token: str, seats: int) -> str:
    """A meetup a week ahead with `seats` seats, planned by the community's owner."""
    start = Timestamp()
    start.FromDatetime(datetime.now(UTC) + timedelta(days=7))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await pb_grpc.ActivitiesServiceStub(channel).CreateActivity(
            pb.CreateActivityRequest(
                community_id=community_id,
                kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
                title="Exam strategies, open session",
                location="Main hall",
                capacity=seats,
                start_time=start,
            ),
            metadata=(("authorization", f"Bearer {owner_token}"),),
            timeout=30,
        )
    return str(reply.activity.id)


async def offer_registrations(
    ports: list[int],
    server_pids: dict[str, int],
    community_id: str,
    activity_id: str,
    tokens: list[str],
    options: argparse.Namespace,
    registered: dict[str, int],
) -> Result:
    """Members registering for the activity, each call by a member of its own; each
    acknowledged registration's id and state go into `registered`."""
    request = pb.RegisterRequest(community_id=community_id, activity_id=activity_id)

    def answered(reply: pb.RegisterResponse) -> None:
        registered[reply.registration.id] = reply.registration.state

    return await offer_calls(
        ports,
        server_pids,
        REGISTER,
        lambda: request,
        tokens,
        options.seconds,
        options.concurrency,
        answered=answered,
        exhausted="ran out of pre-signed members: raise --registrants",
    )


async def check_registrations(url: str, activity_id: str, registered: dict[str, int]) -> str:
    """Every acknowledged registration's Registered published, and the activity's seats
    taken equal to the registrations seated; what was found, or SystemExit."""
    outbox, activities = events_tables.outbox, events_tables.activities
    database = Database(url)
    try:
        async with database.read() as session:
            payloads = await session.scalars(
                select(outbox.c.payload).where(
                    outbox.c.event_type == REGISTERED, outbox.c.published_at.is_not(None)
                )
            )
            published = {events_pb.Registered.FromString(p).registration_id for p in payloads}
            taken = await session.scalar(
                select(activities.c.seats_taken).where(activities.c.id == activity_id)
            )
    finally:
        await database.close()
    seated = {rid for rid, state in registered.items() if state == pb.REGISTRATION_STATE_SEATED}
    missing = seated - published
    if missing:
        raise SystemExit(
            f"{len(missing)} of {len(seated)} seated registrations have no published "
            f"Registered, e.g. {sorted(missing)[:3]}"
        )
    if taken != len(seated):
        raise SystemExit(f"the activity counts {taken} seats taken for {len(seated)} seated")
    return f"{len(seated):,} seated, {len(registered) - len(seated):,} waitlisted"


def run(options: argparse.Namespace, workdir: Path) -> None:
    data_dir = workdir / "data"
    signer = LocalSigner.ensure(data_dir)
    facts = machine_facts(find_nats_server()[0])
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with contextlib.ExitStack() as stack:
        nats_server = stack.enter_context(provide_nats(workdir / "nats"))
        redis_server = stack.enter_context(provide_redis(workdir / "redis"))
        if options.store == "postgresql":
            postgres = stack.enter_context(provide_postgres(workdir / "postgres"))
            suffix = uuid.uuid4().hex[:8]
            members_url = postgres.create_database(f"bench_members_{suffix}")
            events_url = postgres.create_database(f"bench_events_{suffix}")
        else:
            members_url = f"sqlite+aiosqlite:///{data_dir}/members.db"
            events_url = f"sqlite+aiosqlite:///{data_dir}/events.db"
        seeding = time.perf_counter()
        community = asyncio.run(seed_members(members_url, options.communities, options.members))
        registrants = [f"member-{uuid.uuid4().hex[:12]}" for _ in range(options.registrants)]
        asyncio.run(seed_events(events_url, community, options.communities, registrants))
        print(
            f"seeded {options.communities:,} communities, {options.members:,} members of one "
            f"and, in events, {len(registrants):,} registering members in "
            f"{time.perf_counter() - seeding:.0f} s ({options.store})"
        )
        minting = time.perf_counter()
        joiners = [
            signer.mint(f"joiner-{uuid.uuid4().hex[:12]}", ttl_seconds=3600)
            for _ in range(options.users)
        ]
        members = [signer.mint(user, ttl_seconds=3600) for user in registrants]
        owner = signer.mint(OWNER, ttl_seconds=3600)
        print(
            f"signed {len(joiners) + len(members):,} user tokens in "
            f"{time.perf_counter() - minting:.1f} s"
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STUDYHALL_")},
            "STUDYHALL_DATA_DIR": str(data_dir),
            "STUDYHALL_NATS_URL": nats_server.url,
            "STUDYHALL_REDIS_URL": redis_server.url,
            "STUDYHALL_MEMBERS_DATABASE_URL": members_url,
            "STUDYHALL_EVENTS_DATABASE_URL": events_url,
            "STUDYHALL_LOG_LEVEL": "WARNING",
            # Limits on, as in production, so their cost is measured; high enough that the
            # load of the measurement itself is never refused (as bench.members does).
            "STUDYHALL_RATE_LIMIT_PER_CALLER": "100000/second",
            "STUDYHALL_RATE_LIMIT_PER_COMMUNITY": "100000/second",
        }
        signed: list[Result] = []
        joins: list[Result] = []
        registrations: list[Result] = []
        checks: list[str] = []
        joiners_used = members_used = 0

        def with_broker(pids: dict[str, int]) -> dict[str, int]:
            if nats_server.pid is not None:
                pids[BROKER] = nats_server.pid
            return pids

        for round_number in range(options.rounds):
            with contextlib.ExitStack() as servers:
                pids, ports = start_echo(
                    servers, env, workdir, round_number, options.replicas, verify=True
                )
                signed.append(
                    asyncio.run(
                        offer_joins(
                            ports,
                            pids,
                            community,
                            joiners,
                            options.seconds,
                            options.concurrency,
                            reuse_tokens=True,
                        )
                    )
                )
            with contextlib.ExitStack() as servers:
                pids, ports = start_members(servers, env, workdir, round_number, options.replicas)
                result = asyncio.run(
                    offer_joins(
                        ports,
                        with_broker(pids),
                        community,
                        joiners[joiners_used:],
                        options.seconds,
                        options.concurrency,
                    )
                )
                joiners_used += result.latency.count + result.errors + 100
                result.backlog, result.drain_seconds = drain(members_url, members_outbox)
                joins.append(result)
            with contextlib.ExitStack() as servers:
                pids, ports = start_events(servers, env, workdir, round_number, options.replicas)
                activity_id = asyncio.run(plan_activity(ports[0], community, owner, options.seats))
                if options.profile:
                    servers.enter_context(
                        profiling(
                            pids["api 0"], options.seconds, f"{options.profile}.{round_number}"
                        )
                    )
                registered: dict[str, int] = {}
                result = asyncio.run(
                    offer_registrations(
                        ports,
                        with_broker(pids),
                        community,
                        activity_id,
                        members[members_used:],
                        options,
                        registered,
                    )
                )
                members_used += result.latency.count + result.errors + 100
                result.backlog, result.drain_seconds = drain(events_url, events_tables.outbox)
                registrations.append(result)
                checks.append(asyncio.run(check_registrations(events_url, activity_id, registered)))
        print(
            "every seated registration's Registered was published and the seats add up: "
            + "; ".join(checks)
        )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    report(options, signed, joins, registrations)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def report(
    options: argparse.Namespace,
    signed: list[Result],
    joins: list[Result],
    registrations: list[Result],
) -> None:
    print(
        f"\nRegister into a {options.seats:,}-seat activity (a new one each round), "
        f"JoinCommunity into one of {options.members:,} members among "
        f"{options.communities:,} communities; {options.concurrency} concurrent callers, "
        f"{options.seconds:.0f} s x {options.rounds} rounds, store {options.store}, "
        f"{options.replicas} API replica(s) of each service and as many echo servers, relays "
        "(and members' consumers) in processes of their own"
    )
    for name, results in (
        ("echo + token", signed),
        ("JoinCommunity", joins),
        ("Register", registrations),
    ):
        rates = ", ".join(f"{r.rate:.0f}" for r in results)
        print(
            f"{name:<14} {median([r.rate for r in results]):7.0f} calls/s (rounds: {rates})  "
            f"p50 {median([r.latency.p50 * 1000 for r in results]):6.1f} ms  "
            f"p99 {median([r.latency.p99 * 1000 for r in results]):6.1f} ms  "
            f"server CPU {median([r.server_cpu_ms for r in results]):5.2f} ms/call  "
            f"whole machine {median([r.per_call_ms(r.busy_cores) for r in results]):5.2f} "
            f"ms/call  errors {sum(r.errors for r in results)}"
        )
    for name, results in (("join", joins), ("registration", registrations)):
        last = results[-1]
        print(
            f"server CPU per {name} by process (last round): "
            + ", ".join(f"{process} {ms:.2f} ms" for process, ms in last.cpu_by_process.items())
            + f", client {last.per_call_ms(last.client_cores):.2f} ms"
        )
    for name, results in (("members", joins), ("events", registrations)):
        print(
            f"{name} outbox when the load stopped: "
            + ", ".join(
                f"{r.backlog} events, published {r.drain_seconds:.1f} s later" for r in results
            )
        )
    register_ratios, join_ratios = (
        [r.rate / s.rate for r, s in zip(results, signed, strict=True)]
        for results in (registrations, joins)
    )
    for name, ratios in (("Register", register_ratios), ("JoinCommunity", join_ratios)):
        print(
            f"ratio {name}/echo+token: median {median(ratios):.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    met = sum(r >= j for r, j in zip(register_ratios, join_ratios, strict=True))
    print(
        f"target Register/echo+token >= JoinCommunity/echo+token: met in {met} of "
        f"{len(register_ratios)} rounds"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--communities", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seats", type=int, default=10_000, help="the activity's capacity")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--replicas", type=int, default=2, help="API processes (and echo servers) side by side"
    )
    parser.add_argument("--users", type=int, default=40_000, help="pre-signed joiners")
    parser.add_argument(
        "--registrants", type=int, default=40_000, help="pre-signed registering members"
    )
    parser.add_argument(
        "--profile",
        default="",
        help="py-spy raw profile of the first events API replica, one file per round: PATH.N",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-activities-") as scratch:
        run(options, Path(scratch))


if __name__ == "__main__":
    main()
