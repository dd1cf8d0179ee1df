"""The membership load of the fault tests: concurrent clients that join and leave communities
through members' API with request ids, repeat a call whose outcome is unknown until it is
certain, keep a model of every membership they touched; and the tally that compares what they
were told with members' outbox, analytics' inbox and projections, and JetStream's figures."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import nats
from google.protobuf.message import Message
from sqlalchemy import func, select

from services.analytics.consumers import MEMBERS as ANALYTICS_MEMBERS
from services.analytics.store import tables as analytics_tables
from services.kit.auth import LocalSigner
from services.kit.database import Database
from services.kit.events.connection import servers
from services.kit.events.streams import DEADLETTER_STREAM, stream_name
from services.members.store import tables as members_tables
from studyhall.members.v1 import members_events_pb2 as members_events
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.fault.support import (
    ConsumerWatch,
    ServiceProcess,
)
from tests.harness.servers import NatsHandle

COMMUNITIES = 120
CHANGES = 20_000  # JoinCommunity / LeaveCommunity calls that must return OK
CLIENTS = 16  # concurrent asyncio clients, each with users of its own
USERS_PER_CLIENT = 30
RELAY_KILLS = 12
CONSUMER_KILLS = 12
NATS_KILLS = 3
CATCH_UP_TIMEOUT = 300.0
RPC_TIMEOUT = 20.0
# Codes that say for certain the change was not made; any other failure leaves the outcome
# unknown, and the call is repeated with the same request id until the answer is certain.
DEFINITE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Change:
    """A membership change the API confirmed: what the outbox must hold one event for."""

    kind: str  # "joined" or "left"
    community_id: str
    user_id: str
    version: int


@dataclass
class Ledger:
    """The clients' own record of what they asked for and what the API answered."""

    target: int
    issued: int = 0
    ok: list[Change] = field(default_factory=list)
    # Attempts whose outcome was unknown (the call is then repeated with its request id),
    # by the status code that left it unknown.
    unknown: Counter[str] = field(default_factory=Counter)
    # Calls acknowledged after one or more attempts with an unknown outcome.
    recovered: int = 0
    # Calls the API refused or never settled although the clients' model expected success.
    rejected: list[str] = field(default_factory=list)
    # The clients' model of every membership they touched: (community, user) -> active.
    model: dict[tuple[str, str], bool] = field(default_factory=dict)
    finished: bool = False

    @property
    def done(self) -> int:
        return len(self.ok)


@dataclass
class Chaos:
    """What was done to the processes, for the tally."""

    nats_kills: int = 0
    nats_downtime: float = 0.0
    # Consumer kills that JetStream showed to land while a batch was unacknowledged.
    in_flight_hits: int = 0
    log: list[str] = field(default_factory=list)


# --- the load --------------------------------------------------------------------------------


async def create_communities(
    stub: members_grpc.MembersServiceStub, signer: LocalSigner, ledger: Ledger
) -> list[str]:
    async def create(n: int) -> str:
        owner = f"owner-{n}"
        request = members_pb.CreateCommunityRequest(
            name=f"Fault club {n} {uuid.uuid4().hex[:6]}",
            topic="english",
            request_id=uuid.uuid4().hex,
        )
        reply = await settle(stub.CreateCommunity, request, auth_metadata(signer, owner), ledger)
        assert reply is not None, ledger.rejected
        community_id = str(reply.community.id)
        ledger.model[(community_id, owner)] = True
        return community_id

    created: list[str] = []
    for start in range(0, COMMUNITIES, 20):
        created += await asyncio.gather(*(create(n) for n in range(start, start + 20)))
    return created


async def drive(
    stub: members_grpc.MembersServiceStub | Sequence[members_grpc.MembersServiceStub],
    signer: LocalSigner,
    communities: list[str],
    ledger: Ledger,
    rng: random.Random,
) -> None:
    stubs = list(stub) if isinstance(stub, Sequence) else [stub]

    async def client(number: int) -> None:
        users = [f"user-{number}-{n}" for n in range(USERS_PER_CLIENT)]
        tokens = {user: auth_metadata(signer, user) for user in users}
        # Only this client changes its users' memberships, one call at a time, so its model
        # of them is exact.
        while ledger.issued < ledger.target:
            ledger.issued += 1
            user = rng.choice(users)
            community_id = rng.choice(communities)
            key = (community_id, user)
            active = ledger.model.get(key, False)
            request_id = uuid.uuid4().hex
            reply: Any
            if active:
                leave = members_pb.LeaveCommunityRequest(
                    community_id=community_id, request_id=request_id
                )
                reply = await settle([s.LeaveCommunity for s in stubs], leave, tokens[user], ledger)
                version = reply.version if reply is not None else 0
            else:
                join = members_pb.JoinCommunityRequest(
                    community_id=community_id, request_id=request_id
                )
                reply = await settle([s.JoinCommunity for s in stubs], join, tokens[user], ledger)
                version = reply.membership.version if reply is not None else 0
            if reply is None:
                # The outcome is unknown or refused (reported by the tally); this user's
                # membership can no longer be predicted, so leave it alone from now on.
                users.remove(user)
                if not users:
                    return
                continue
            ledger.ok.append(Change("left" if active else "joined", community_id, user, version))
            ledger.model[key] = not active

    try:
        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    finally:
        ledger.finished = True


async def settle(
    method: Callable[..., Awaitable[Any]] | Sequence[Callable[..., Awaitable[Any]]],
    request: Message,
    metadata: list[tuple[str, str]],
    ledger: Ledger,
) -> Any | None:
    """The reply to `request`, repeated with its request id while the outcome is unknown;
    None when refused or never settled (noted in the ledger). Given the method of several
    replicas, each attempt goes to the next, as a client balancing over them would."""
    methods = list(method) if isinstance(method, Sequence) else [method]
    what = f"{type(request).__name__} {str(request).strip()!r}"
    last = ""
    first = random.randrange(len(methods))
    for attempt in range(MAX_ATTEMPTS):
        call = methods[(first + attempt) % len(methods)]
        try:
            reply = await call(request, metadata=metadata, timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            if error.code() in DEFINITE:
                ledger.rejected.append(f"{what}: {error.code().name} {error.details()}")
                return None
            ledger.unknown[error.code().name] += 1
            last = f"{error.code().name} {error.details()}"
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
            continue
        ledger.recovered += attempt > 0
        return reply
    ledger.rejected.append(f"{what}: no certain answer in {MAX_ATTEMPTS} attempts; last {last}")
    return None


def auth_metadata(signer: LocalSigner, user: str) -> list[tuple[str, str]]:
    return [("authorization", "Bearer " + signer.mint(user))]


# --- the faults ------------------------------------------------------------------------------


def moments(count: int, ledger: Ledger, rng: random.Random) -> list[float]:
    """Random points of the load, as numbers of confirmed changes, for `count` faults."""
    return sorted(rng.uniform(0.02, 0.92) * ledger.target for _ in range(count))


async def until(ledger: Ledger, done: float) -> None:
    while ledger.done < done and not ledger.finished:
        await asyncio.sleep(0.05)


async def kill_repeatedly(
    process: ServiceProcess,
    kills: int,
    ledger: Ledger,
    rng: random.Random,
    chaos: Chaos,
    watch: ConsumerWatch | None = None,
) -> None:
    """`kills` SIGKILLs in pairs: one at a random moment of the load, then one while the
    restarted process works through the backlog that piled up while it was down.

    A process that keeps up with the load is idle most of the time, so a random kill mostly
    lands between two batches and cuts nothing off. The second kill of a pair aims at work
    in flight: for a consumer, as soon as JetStream reports messages delivered to the new
    run and not yet acknowledged (`watch`); for the relay, a moment after it starts.
    """
    for moment in moments((kills + 1) // 2, ledger, rng):
        await until(ledger, moment)
        await asyncio.sleep(rng.uniform(0, 1.0))
        process.kill()
        chaos.log.append(f"{process.name} killed at random at {ledger.done}")
        # Down long enough for a backlog of a few batches to pile up.
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        since = await watch.delivery() if watch is not None else None
        process.start()
        if process.kills >= kills:
            break
        await wait_until_running(process)
        if watch is not None:
            aimed = await watch.wait_for_batch_in_flight(since[0] if since else 0, timeout=15)
            chaos.in_flight_hits += aimed
            when = "with a batch in flight" if aimed else "while catching up (no batch seen)"
        else:
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            when = "while catching up"
        process.kill()
        chaos.log.append(f"{process.name} killed {when} at {ledger.done}")
        await asyncio.sleep(rng.uniform(0.2, 2.0))
        process.start()
        # Let the new run get to work before the next random kill.
        await asyncio.sleep(rng.uniform(2.0, 5.0))


async def wait_until_running(process: ServiceProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not process.logged(f"{process.service} {process.mode} running"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{process.name} did not start\n{process.log_tail()}")
        await asyncio.sleep(0.01)


async def kill_nats_repeatedly(
    server: NatsHandle, kills: int, ledger: Ledger, rng: random.Random, chaos: Chaos
) -> None:
    for moment in moments(kills, ledger, rng):
        await until(ledger, moment)
        await asyncio.sleep(rng.uniform(0, 2.0))
        down = time.monotonic()
        await asyncio.to_thread(server.kill)
        chaos.nats_kills += 1
        chaos.log.append(f"nats-server killed at {ledger.done}")
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        await asyncio.to_thread(server.start)
        chaos.nats_downtime += time.monotonic() - down
        await asyncio.sleep(rng.uniform(3.0, 6.0))


# --- catching up and the tally ---------------------------------------------------------------


async def progress(members_db: Database, analytics_db: Database) -> tuple[int, int, int]:
    """(events produced, of them not yet published, events consumed)."""
    outbox = members_tables.outbox
    inbox = analytics_tables.inbox
    async with members_db.read() as session:
        produced, unpublished = (
            await session.execute(
                select(
                    func.count(),
                    func.count().filter(outbox.c.published_at.is_(None)),
                ).select_from(outbox)
            )
        ).one()
    async with analytics_db.read() as session:
        consumed = await session.scalar(
            select(func.count())
            .select_from(inbox)
            .where(inbox.c.consumer == ANALYTICS_MEMBERS.name)
        )
    return int(produced), int(unpublished), int(consumed or 0)


async def wait_until_caught_up(
    members_db: Database, analytics_db: Database, processes: tuple[ServiceProcess, ...]
) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while True:
        produced, unpublished, consumed = await progress(members_db, analytics_db)
        if unpublished == 0 and consumed >= produced:
            return
        for process in processes:
            if not process.alive:
                raise AssertionError(
                    f"{process.name} exited by itself while catching up\n{process.log_tail()}"
                )
        if time.monotonic() > deadline:
            tails = "\n".join(f"{p.name}:\n{p.log_tail(15)}" for p in processes)
            raise AssertionError(
                f"not caught up after {CATCH_UP_TIMEOUT:.0f}s: {produced} produced, "
                f"{unpublished} unpublished, {consumed} consumed\n{tails}"
            )
        await asyncio.sleep(0.5)


async def broker_figures(url: str) -> dict[str, int]:
    client = await nats.connect(servers(url), connect_timeout=5)
    try:
        js = client.jetstream()
        name = stream_name("members")
        stream = await js.stream_info(name)
        info = await js.consumer_info(name, ANALYTICS_MEMBERS.name)
        # The stream messages this consumer is meant to receive, each delivered once at least.
        filters = info.config.filter_subjects or [info.config.filter_subject or ">"]
        matching = 0
        for subjects in filters:
            counts = (await js.stream_info(name, subjects_filter=subjects)).state.subjects
            matching += sum((counts or {}).values())
        try:
            dead = (await js.stream_info(DEADLETTER_STREAM)).state.messages
        except nats.js.errors.NotFoundError:
            dead = 0
        return {
            "stream_messages": int(stream.state.messages),
            "consumer_messages": matching,
            "consumer_deliveries": int(info.delivered.consumer_seq),
            "consumer_pending": int(info.num_pending or 0) + int(info.num_ack_pending or 0),
            "dead_letters": int(dead),
        }
    finally:
        await client.close()


async def tally_of(
    members_db: Database, analytics_db: Database, ledger: Ledger, communities: list[str]
) -> dict[str, Any]:
    outbox = members_tables.outbox
    memberships = members_tables.memberships
    inbox = analytics_tables.inbox
    member_states = analytics_tables.member_states
    async with members_db.read() as session:
        outbox_rows = (
            await session.execute(select(outbox.c.event_id, outbox.c.event_type, outbox.c.payload))
        ).all()
        membership_rows = (
            await session.execute(
                select(
                    memberships.c.community_id,
                    memberships.c.user_id,
                    memberships.c.active,
                    memberships.c.version,
                )
            )
        ).all()
    async with analytics_db.read() as session:
        consumed_ids = (
            await session.scalars(
                select(inbox.c.event_id).where(inbox.c.consumer == ANALYTICS_MEMBERS.name)
            )
        ).all()
        state_rows = (
            await session.execute(
                select(
                    member_states.c.community_id,
                    member_states.c.user_id,
                    member_states.c.active,
                    member_states.c.version,
                )
            )
        ).all()
        stats_ids = set(
            (await session.scalars(select(analytics_tables.community_stats.c.community_id))).all()
        )

    produced = {row.event_id for row in outbox_rows}
    consumed = set(consumed_ids)

    # The membership changes the outbox holds events for; each should appear once.
    committed: Counter[Change] = Counter()
    for row in outbox_rows:
        if row.event_type == members_events.MemberJoined.DESCRIPTOR.full_name:
            joined = members_events.MemberJoined.FromString(row.payload)
            committed[Change("joined", joined.community_id, joined.user_id, joined.version)] += 1
        elif row.event_type == members_events.MemberLeft.DESCRIPTOR.full_name:
            left = members_events.MemberLeft.FromString(row.payload)
            committed[Change("left", left.community_id, left.user_id, left.version)] += 1

    truth = {(r.community_id, r.user_id): (bool(r.active), int(r.version)) for r in membership_rows}
    seen = {(r.community_id, r.user_id): (bool(r.active), int(r.version)) for r in state_rows}
    members_counts = Counter(key[0] for key, (active, _) in truth.items() if active)
    analytics_counts = Counter(key[0] for key, (active, _) in seen.items() if active)
    found: dict[str, list[Any]] = {
        "lost": sorted(produced - consumed),
        "unexpected": sorted(consumed - produced),
        "acknowledged_without_event": [c for c in ledger.ok if committed[c] == 0],
        "events_committed_twice": [c for c, n in committed.items() if n > 1],
        # The clients know the final state of every membership they changed.
        "model_mismatches": [
            (key, active, truth.get(key))
            for key, active in ledger.model.items()
            if truth.get(key, (False, 0))[0] != active
        ],
        # A membership whose last version or state analytics does not hold: an event lost,
        # or one applied twice or out of order over a newer one.
        "effect_mismatches": [
            (key, truth.get(key), seen.get(key))
            for key in truth.keys() | seen.keys()
            if truth.get(key) != seen.get(key)
        ],
        "count_mismatches": [
            (community, members_counts[community], analytics_counts[community])
            for community in set(communities) | members_counts.keys() | analytics_counts.keys()
            if members_counts[community] != analytics_counts[community]
        ],
        "communities_without_stats": sorted(set(communities) - stats_ids),
    }
    tally: dict[str, Any] = {
        "communities": len(communities),
        "attempts": ledger.issued + len(communities),
        "acknowledged": ledger.done + len(communities),
        # Calls whose first outcome was unknown, settled by repeating their request id.
        "recovered": ledger.recovered,
        "produced": len(produced),
        "consumed": len(consumed),
        "ok": len(produced & consumed),
    }
    tally.update({name: len(items) for name, items in found.items()})
    tally["active_members"] = sum(members_counts.values())
    tally["samples"] = {name: items[:10] for name, items in found.items() if items}
    return tally
