"""Billing under faults: money is never taken twice, and access follows what was paid.

Billing's API (with its scheduler), its outbox relay and the sandbox payment provider run as
separate OS processes; each is SIGKILLed and started again at random moments while members
buy a course, subscribe to a monthly plan (a month lasts seconds, so renewals, their
provider calls and their webhooks happen under the faults too) and cancel. Every mutating
call is repeated with its request id until its answer is certain. When the faults stop,
every subscription is canceled and runs out; then, from the databases and the provider's
own store:

- `billing verify` (VerifyLedger) finds nothing wrong;
- no charge happened twice: one charge per checkout request, one payment intent per charge
  at the provider, and the money the provider collected is the money billing booked;
- every paying member holds exactly what they paid for: the course once if and only if its
  charge succeeded, and each subscription's access spans exactly as many periods as its
  succeeded charges paid for;
- every staged event left through the outbox, once each into JetStream.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import nats
import pytest
from google.protobuf.message import Message
from sqlalchemy import func, select

from services.billing.store import tables
from services.kit.access import Role
from services.kit.auth import LocalSigner
from services.kit.database import Database, utc
from services.kit.events.connection import servers
from services.kit.events.streams import stream_name
from services.kit.projection import upsert_newer
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc
from tests.fault.support import ServiceProcess
from tests.support.processes import inherited_environment
from tests.support.services import free_port, wait_until_serving

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

MEMBERS = 8
MONTH_SECONDS = 3.0
CHAOS_SECONDS = 12.0
SETTLE_TIMEOUT = 90.0
SECRET = "whsec_chaos_secret"
API_KEY = "sk_test_chaos"
# Answers that say for certain what became of a call; anything else is asked again.
DEFINITE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
}

ResponseT = TypeVar("ResponseT", bound=Message)


def _environment(
    data_dir: Path, database_url: str, nats_url: str, redis_url: str
) -> dict[str, str]:
    env = inherited_environment(telemetry=False)
    webhook_port, sandbox_port = free_port(), free_port()
    env.update(
        STUDYHALL_DATA_DIR=str(data_dir),
        STUDYHALL_NATS_URL=nats_url,
        STUDYHALL_REDIS_URL=redis_url,
        STUDYHALL_RELAY="external",
        STUDYHALL_SHUTDOWN_GRACE_SECONDS="5",
        STUDYHALL_RATE_LIMIT_PER_CALLER="",
        STUDYHALL_RATE_LIMIT_PER_COMMUNITY="",
        STUDYHALL_BILLING_DATABASE_URL=database_url,
        STUDYHALL_BILLING_GRPC_PORT=str(free_port()),
        STUDYHALL_BILLING_METRICS_PORT=str(free_port()),
        STUDYHALL_BILLING_WEBHOOK_PORT=str(webhook_port),
        STUDYHALL_BILLING_WEBHOOK_SECRET=SECRET,
        STUDYHALL_BILLING_PROVIDER_URL=f"http://127.0.0.1:{sandbox_port}",
        STUDYHALL_BILLING_PROVIDER_API_KEY=API_KEY,
        STUDYHALL_BILLING_SUBSCRIPTION_MONTH_SECONDS=str(MONTH_SECONDS),
        STUDYHALL_SANDBOX_PORT=str(sandbox_port),
        STUDYHALL_SANDBOX_DATA_DIR=str(data_dir / "sandbox"),
        STUDYHALL_SANDBOX_API_KEY=API_KEY,
        STUDYHALL_SANDBOX_WEBHOOK_URL=f"http://127.0.0.1:{webhook_port}/webhooks/provider",
        STUDYHALL_SANDBOX_WEBHOOK_SECRET=SECRET,
        # A provider that keeps trying a billing that is down comes back soon after it does.
        STUDYHALL_SANDBOX_RETRY_MAX_SECONDS="1",
    )
    return env


async def test_no_charge_twice_and_access_as_paid_while_billing_relay_and_provider_are_killed(
    database_url: str, redis_url: str, nats_url: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("STUDYHALL_FAULT_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    store = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    print(f"\nbilling chaos test on {store}, seed {seed} (set STUDYHALL_FAULT_SEED to reuse)")
    started = time.monotonic()
    data_dir = tmp_path / "data"
    logs = tmp_path / "logs"
    logs.mkdir()
    (data_dir / "sandbox").mkdir(parents=True)
    signer = LocalSigner.ensure(data_dir)
    env = _environment(data_dir, database_url, nats_url, redis_url)
    api = ServiceProcess("billing", "serve", env, logs)
    relay = ServiceProcess("billing", "relay", env, logs)
    provider = ServiceProcess("billing.sandbox", "serve", env, logs)
    processes = (api, relay, provider)
    database = Database(database_url)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{env['STUDYHALL_BILLING_GRPC_PORT']}")
    stub = pb_grpc.BillingServiceStub(channel)

    def auth(user: str, *, operator: bool = False) -> list[tuple[str, str]]:
        return [("authorization", "Bearer " + signer.mint(user, operator=operator))]

    async def certain(
        method: Callable[..., Awaitable[ResponseT]], request: Message, user: str
    ) -> tuple[grpc.StatusCode, ResponseT | None]:
        """The call repeated with the same request (and request id) until its answer is
        certain: a killed service or provider leaves it unknown."""
        while True:
            try:
                return grpc.StatusCode.OK, await method(request, metadata=auth(user), timeout=10)
            except grpc.aio.AioRpcError as error:
                if error.code() in DEFINITE:
                    return error.code(), None
                retries[error.code().name] += 1
                await asyncio.sleep(0.2)

    retries: Counter[str] = Counter()
    try:
        for process in processes:
            process.start()
        await wait_until_serving(channel, timeout=60)
        community_id = str(uuid.uuid4())
        members = [f"member-{i}" for i in range(MEMBERS)]
        await _roles(database, community_id, ["owner", *members])
        plan = await _product(stub, auth("owner"), community_id, monthly=True)
        course = await _product(stub, auth("owner"), community_id, monthly=False)

        async def member_life(index: int, user: str) -> dict[str, Any]:
            # A quarter pay with a card that is declined.
            card = "pm_card_chargeDeclined" if index % 4 == 3 else "pm_card_visa"
            await asyncio.sleep(rng.uniform(0, CHAOS_SECONDS / 3))
            checkout = pb.CreateCheckoutRequest(
                request_id=f"checkout-{user}",
                community_id=community_id,
                product_ids=[course],
                payment_method=card,
            )
            code, bought = await certain(stub.CreateCheckout, checkout, user)
            assert code == grpc.StatusCode.OK, code
            # The same request again, as a client unsure of the answer would: the same charge.
            _, again = await certain(stub.CreateCheckout, checkout, user)
            assert again is not None
            assert bought is not None
            assert again.charge.id == bought.charge.id
            subscribe = pb.CreateSubscriptionRequest(
                request_id=f"subscribe-{user}",
                community_id=community_id,
                product_id=plan,
                payment_method=card,
            )
            code, made = await certain(stub.CreateSubscription, subscribe, user)
            assert code == grpc.StatusCode.OK, code
            assert made is not None
            await asyncio.sleep(rng.uniform(0, CHAOS_SECONDS / 2))
            if index % 2 == 0:
                await certain(
                    stub.CancelSubscription,
                    pb.CancelSubscriptionRequest(
                        request_id=f"cancel-{user}",
                        community_id=community_id,
                        subscription_id=made.subscription.id,
                    ),
                    user,
                )
            return {"user": user, "charge_id": bought.charge.id, "sub_id": made.subscription.id}

        kills: Counter[str] = Counter()

        async def chaos() -> None:
            deadline = time.monotonic() + CHAOS_SECONDS
            victims: list[ServiceProcess] = []
            # Until the deadline, and on until each has died twice: a slow machine restarts
            # the processes slowly, and fewer rounds would test less than this test says.
            while time.monotonic() < deadline or min(kills[p.name] for p in processes) < 2:
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                # Each of the three in turn, in a shuffled order: every one dies each round.
                if not victims:
                    victims = rng.sample(processes, len(processes))
                victim = victims.pop()
                victim.kill()
                kills[victim.name] += 1
                await asyncio.sleep(rng.uniform(0.1, 1.0))
                victim.start()

        lives, _ = await asyncio.gather(
            asyncio.gather(*(member_life(i, user) for i, user in enumerate(members))), chaos()
        )
        chaos_seconds = time.monotonic() - started
        await wait_until_serving(channel, timeout=60)
        # The faults are over: every subscription still running is canceled and runs out.
        for life in lives:
            await certain(
                stub.CancelSubscription,
                pb.CancelSubscriptionRequest(
                    request_id=f"cancel-all-{life['user']}",
                    community_id=community_id,
                    subscription_id=life["sub_id"],
                ),
                life["user"],
            )
        await _settled(database)
        verified = await stub.VerifyLedger(
            pb.VerifyLedgerRequest(), metadata=auth("operator", operator=True)
        )
        provider.stop()
        tally = await _tally(database, data_dir / "sandbox" / "sandbox.db", lives, course)
        stream = await _stream_messages(nats_url, community_id)
        for process in (api, relay):
            process.stop()
    finally:
        await channel.close()
        await database.close()
        for process in processes:
            process.kill()

    print(
        f"billing chaos on {store}: {dict(kills)} kills, {sum(retries.values())} calls "
        f"repeated, {tally['succeeded']} charges paid ({tally['renewals']} renewals), "
        f"{tally['outbox']} events; faults {chaos_seconds:.1f} s, "
        f"all {time.monotonic() - started:.1f} s"
    )
    assert list(verified.problems) == []
    assert verified.charges == tally["charges"]
    assert tally["problems"] == []
    assert min(kills[process.name] for process in processes) >= 2, kills
    assert stream == tally["outbox"]
    for process in processes:
        assert not process.unexpected_exits, f"{process.name}: {process.unexpected_exits}"


async def _roles(database: Database, community_id: str, users: list[str]) -> None:
    """The members' standing, as billing's projection of members' events would hold it."""
    access = tables.access
    async with database.write() as session:
        await upsert_newer(
            session,
            access.communities,
            [{"community_id": community_id, "visibility": 1, "version": 1}],
            ["community_id"],
        )
        await upsert_newer(
            session,
            access.roles,
            [
                {
                    "community_id": community_id,
                    "user_id": user,
                    "role": int(Role.OWNER if user == "owner" else Role.MEMBER),
                    "active": True,
                    "version": 1,
                }
                for user in users
            ],
            ["community_id", "user_id"],
        )


async def _product(
    stub: pb_grpc.BillingServiceStub,
    owner: list[tuple[str, str]],
    community_id: str,
    *,
    monthly: bool,
) -> str:
    made = await stub.CreateProduct(
        pb.CreateProductRequest(
            community_id=community_id,
            kind=pb.PRODUCT_KIND_MEMBERSHIP_PLAN if monthly else pb.PRODUCT_KIND_PAID_COURSE,
            name="Monthly plan" if monthly else "Course",
            price=pb.Money(currency="EUR", amount_minor=1000 if monthly else 2500),
            billing_period=pb.BILLING_PERIOD_MONTHLY if monthly else pb.BILLING_PERIOD_ONE_OFF,
        ),
        metadata=owner,
        timeout=10,
    )
    return str(made.product.id)


async def _settled(database: Database) -> None:
    """Wait until every charge is final, every subscription ended, no job is left and the
    outbox is empty of unpublished events."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        async with database.read() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(tables.charges)
                .where(tables.charges.c.state.in_([1, 2]))
            )
            running = await session.scalar(
                select(func.count())
                .select_from(tables.subscriptions)
                .where(tables.subscriptions.c.state != 5)
            )
            jobs = await session.scalar(select(func.count()).select_from(tables.scheduled_jobs))
            unpublished = await session.scalar(
                select(func.count())
                .select_from(tables.outbox)
                .where(tables.outbox.c.published_at.is_(None))
            )
        if not (pending or running or jobs or unpublished):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"never settled: {pending} charges pending, {running} subscriptions running, "
                f"{jobs} jobs, {unpublished} events unpublished"
            )
        await asyncio.sleep(0.25)


async def _tally(
    database: Database, sandbox_db: Path, lives: list[dict[str, Any]], course: str
) -> dict[str, Any]:
    problems: list[str] = []
    async with database.read() as session:
        charges = list(await session.execute(select(tables.charges)))
        links = {
            row.charge_id: row for row in await session.execute(select(tables.subscription_charges))
        }
        entitlements = list(await session.execute(select(tables.entitlements)))
        subscriptions = {row.id: row for row in await session.execute(select(tables.subscriptions))}
        outbox = int(await session.scalar(select(func.count()).select_from(tables.outbox)) or 0)
    with sqlite3.connect(sandbox_db) as provider:
        intents = list(
            provider.execute("SELECT idempotency_key, amount, status FROM payment_intents")
        )
    paid = {row.id: row for row in charges if row.state == 3}
    # One payment intent per charge (the charge id is the provider's idempotency key), and
    # the money the provider collected is the money billing booked.
    collected = {key: amount for key, amount, status in intents if status == "succeeded"}
    if set(collected) != set(paid):
        problems.append(f"provider collected {sorted(collected)} but billing paid {sorted(paid)}")
    if sum(collected.values()) != sum(row.amount_minor for row in paid.values()):
        problems.append("provider and billing disagree on the money collected")
    course_charges = Counter(row.user_id for row in charges if row.id not in links)
    for life in lives:
        user = life["user"]
        if course_charges[user] != 1:
            problems.append(f"{user} has {course_charges[user]} course charges, not 1")
        held = [
            e
            for e in entitlements
            if e.user_id == user and e.product_id == course and e.revoked_at is None
        ]
        if len(held) != (1 if life["charge_id"] in paid else 0):
            problems.append(f"{user} holds {len(held)} course entitlements")
        sub = subscriptions[life["sub_id"]]
        periods = sum(
            1
            for charge_id, link in links.items()
            if link.subscription_id == sub.id and charge_id in paid
        )
        access = [e for e in entitlements if e.id == sub.entitlement_id]
        if periods == 0:
            if access:
                problems.append(f"{user} holds access to a plan never paid for")
            continue
        if len(access) != 1:
            problems.append(f"{user}'s subscription has {len(access)} entitlements")
            continue
        span = (utc(access[0].end_at) - utc(access[0].start_at)).total_seconds()
        if round(span / MONTH_SECONDS) != periods or abs(span - periods * MONTH_SECONDS) > 0.01:
            problems.append(f"{user} paid {periods} periods but holds {span:.2f} s of access")
    renewals = sum(
        1 for charge_id, link in links.items() if link.purpose == "renewal" and charge_id in paid
    )
    return {
        "problems": problems,
        "charges": len(charges),
        "succeeded": len(paid),
        "renewals": renewals,
        "outbox": outbox,
    }


async def _stream_messages(nats_url: str, community_id: str) -> int:
    """How many of the community's billing events JetStream holds."""
    client = await nats.connect(servers(nats_url))
    try:
        info = await client.jetstream().stream_info(
            stream_name("billing"), subjects_filter=f"studyhall.billing.{community_id}.>"
        )
        return sum((info.state.subjects or {}).values())
    finally:
        await client.close()
