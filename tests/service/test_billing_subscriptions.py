"""Subscriptions end to end on SQLite and PostgreSQL, with real NATS and the sandbox
provider process: trials that turn into paid periods, renewals charged by the scheduler
once per period, dunning with retries and a grace, plan changes with proration, cancels and
reactivations, and the MRR movements each publishes (per currency). Periods last seconds
(settings), no clock is faked; the ledger is verified after every test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select
from typer.testing import CliRunner

from services.billing.app import SPEC
from services.billing.ledger.verify import verify
from services.billing.settings import BillingSettings
from services.billing.store.tables import charges, entitlements, outbox, scheduled_jobs
from services.cli.main import app
from services.kit.access import Role
from services.kit.database import utc
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.billing.v1 import billing_events_pb2 as events
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1.profiles_service_pb2_grpc import ProfilesServiceStub
from tests.support.access import grant
from tests.support.billing import API_KEY, SECRET, Sandbox, sandbox
from tests.support.catalogue import STORES, new_database
from tests.support.errors import field_violations
from tests.support.members import Hall
from tests.support.services import RunningService, free_port, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

# A trial day lasts one second and a month three; a failed renewal is tried again half a
# second and a second after the period's end, and access ends two seconds after it.
TIMING = {
    "subscription_day_seconds": 1,
    "subscription_month_seconds": 3,
    "dunning_retry_seconds": "0.5,1",
    "dunning_grace_seconds": 2,
}
WAIT = 20.0

TRIALING, ACTIVE, PAST_DUE, CANCELED, ENDED, INCOMPLETE = 1, 2, 3, 4, 5, 6


@dataclass
class Billing:
    running: RunningService
    provider: Sandbox
    data_dir: Path
    members: RunningService

    @property
    def stub(self) -> pb_grpc.BillingServiceStub:
        return pb_grpc.BillingServiceStub(self.running.channel)

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.running.auth(user)


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def provider_for(
    store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, int]]:
    port = free_port()
    directory = tmp_path_factory.mktemp(f"subscriptions-sandbox-{store}")
    with sandbox(directory, f"http://127.0.0.1:{port}/webhooks/provider") as provider:
        yield provider, port


@pytest.fixture(scope="module")
async def billing(
    store: str,
    provider_for: tuple[Sandbox, int],
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Billing]:
    provider, port = provider_for
    directory = tmp_path_factory.mktemp(f"subscriptions-{store}")
    with new_database(store, request, directory) as database_url:
        # Members answers for segments (a coupon limited to one); same signing key.
        async with (
            running_service(
                MEMBERS,
                MembersSettings,
                database_url=f"sqlite+aiosqlite:///{directory / 'members.db'}",
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=directory,
                relay="external",
            ) as members,
            running_service(
                SPEC,
                BillingSettings,
                database_url=database_url,
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=directory,
                relay="external",
                provider_url=provider.url,
                provider_api_key=API_KEY,
                webhook_secret=SECRET,
                webhook_port=port,
                members_address=members.server.address,
                **TIMING,
            ) as running,
        ):
            yield Billing(running, provider, directory, members)


@pytest.fixture(autouse=True)
async def ledger_verified(billing: Billing) -> AsyncIterator[None]:
    yield
    async with billing.running.deps.database.read() as session:
        report = await verify(session)
    assert report.problems == []


async def community(billing: Billing) -> str:
    community_id = str(uuid.uuid4())
    await grant(billing.running, community_id, "olga", Role.OWNER)
    for member in ("mia", "max"):
        await grant(billing.running, community_id, member, Role.MEMBER)
    return community_id


async def plan(
    billing: Billing,
    community_id: str,
    *,
    amount: int = 1200,
    currency: str = "EUR",
    trial_days: int = 0,
    period: pb.BillingPeriod.ValueType = pb.BILLING_PERIOD_MONTHLY,
    kind: pb.ProductKind.ValueType = pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
) -> str:
    made = await billing.stub.CreateProduct(
        pb.CreateProductRequest(
            community_id=community_id,
            kind=kind,
            name=f"Plan {amount} {currency}",
            price=pb.Money(currency=currency, amount_minor=amount),
            billing_period=period,
            trial_days=trial_days,
        ),
        metadata=billing.auth("olga"),
    )
    return str(made.product.id)


async def subscribe(
    billing: Billing,
    community_id: str,
    product_id: str,
    *,
    user: str = "mia",
    method: str = "pm_card_visa",
    request_id: str = "",
    coupon: str = "",
) -> pb.CreateSubscriptionResponse:
    made: pb.CreateSubscriptionResponse = await billing.stub.CreateSubscription(
        pb.CreateSubscriptionRequest(
            request_id=request_id,
            community_id=community_id,
            product_id=product_id,
            payment_method=method,
            coupon_code=coupon,
        ),
        metadata=billing.auth(user),
    )
    return made


async def get(billing: Billing, community_id: str, subscription_id: str) -> pb.Subscription:
    found = await billing.stub.GetSubscription(
        pb.GetSubscriptionRequest(community_id=community_id, subscription_id=subscription_id),
        metadata=billing.auth("olga"),
    )
    sub: pb.Subscription = found.subscription
    return sub


async def reaches(
    billing: Billing, community_id: str, subscription_id: str, state: int, **fields: object
) -> pb.Subscription:
    async def check() -> bool:
        sub = await get(billing, community_id, subscription_id)
        return sub.state == state and all(getattr(sub, k) == v for k, v in fields.items())

    await eventually(check, f"subscription {subscription_id} in state {state} {fields}", WAIT)
    return await get(billing, community_id, subscription_id)


async def cancel(
    billing: Billing, community_id: str, subscription_id: str, user: str = "mia"
) -> pb.Subscription:
    done = await billing.stub.CancelSubscription(
        pb.CancelSubscriptionRequest(community_id=community_id, subscription_id=subscription_id),
        metadata=billing.auth(user),
    )
    sub: pb.Subscription = done.subscription
    return sub


async def mrr_moves(billing: Billing, community_id: str) -> list[tuple[int, int, str]]:
    """(kind, amount, currency) of every MrrMoved staged for the community, in order."""
    async with billing.running.deps.database.read() as session:
        rows = await session.execute(
            select(outbox.c.payload)
            .where(
                outbox.c.community_id == community_id,
                outbox.c.event_type == events.MrrMoved.DESCRIPTOR.full_name,
            )
            .order_by(outbox.c.seq)
        )
        moves = [events.MrrMoved.FromString(row[0]) for row in rows]
    return [(int(m.kind), m.amount_minor, m.currency) for m in moves]


async def paid_charges(billing: Billing, community_id: str) -> list[int]:
    async with billing.running.deps.database.read() as session:
        rows = await session.execute(
            select(charges.c.amount_minor)
            .where(charges.c.community_id == community_id, charges.c.state == 3)
            .order_by(charges.c.created_at)
        )
        return [int(row[0]) for row in rows]


async def access_of(billing: Billing, community_id: str, user: str) -> list[tuple[str, bool]]:
    """(product, whether it gives access now) of the member's entitlements, oldest first."""
    now = datetime.now(UTC)
    async with billing.running.deps.database.read() as session:
        rows = await session.execute(
            select(entitlements.c.product_id, entitlements.c.revoked_at, entitlements.c.end_at)
            .where(entitlements.c.community_id == community_id, entitlements.c.user_id == user)
            .order_by(entitlements.c.created_at)
        )
        return [(row[0], row[1] is None and (row[2] is None or utc(row[2]) > now)) for row in rows]


async def test_a_trial_turns_into_paid_periods_renewed_once_each_and_counted_new_once(
    billing: Billing,
) -> None:
    community_id = await community(billing)
    product_id = await plan(billing, community_id, amount=1200, trial_days=1)

    made = await subscribe(billing, community_id, product_id, request_id="sub-trial-1")
    again = await subscribe(billing, community_id, product_id, request_id="sub-trial-1")
    assert again.subscription.id == made.subscription.id  # a retry is the same subscription
    assert made.subscription.state == TRIALING
    assert not made.HasField("charge")  # nothing is charged during the trial
    assert await access_of(billing, community_id, "mia") == [(product_id, True)]

    # The trial ends after a second; the scheduler renews: one charge per period.
    sub = await reaches(billing, community_id, made.subscription.id, ACTIVE)
    assert not sub.trialing
    await eventually(
        lambda: _at_least(paid_charges(billing, community_id), 2), "a second period paid", WAIT
    )
    await cancel(billing, community_id, sub.id)
    ended = await reaches(billing, community_id, sub.id, ENDED)
    paid = await paid_charges(billing, community_id)
    # Each period was paid once: periods are back to back, from the trial's end.
    periods = (ended.current_period_end.ToSeconds() - sub.current_period_start.ToSeconds()) / 3
    assert len(paid) == round(periods)
    assert set(paid) == {1200}
    moves = await mrr_moves(billing, community_id)
    assert moves == [
        (events.MRR_MOVE_KIND_NEW, 1200, "EUR"),
        (events.MRR_MOVE_KIND_CHURN, -1200, "EUR"),
    ]
    assert sum(amount for _, amount, _ in moves) == 0


async def _at_least(found: object, n: int) -> bool:
    return len(await found) >= n  # type: ignore[misc]


async def test_a_declined_renewal_is_retried_then_ends_at_the_grace_with_access_withdrawn(
    billing: Billing,
) -> None:
    community_id = await community(billing)
    product_id = await plan(billing, community_id, amount=800, trial_days=1)
    made = await subscribe(billing, community_id, product_id, method="pm_card_chargeDeclined")

    past_due = await reaches(billing, community_id, made.subscription.id, PAST_DUE)
    assert past_due.HasField("next_attempt_time")
    ended = await reaches(billing, community_id, made.subscription.id, ENDED)
    assert ended.failed_attempts == 3  # the renewal and its two retries
    assert await access_of(billing, community_id, "mia") == [(product_id, False)]
    assert await paid_charges(billing, community_id) == []
    # Never paid: no MRR came, none went.
    assert await mrr_moves(billing, community_id) == []
    async with billing.running.deps.database.read() as session:
        types = [
            row[0].rsplit(".", 1)[-1]
            for row in await session.execute(
                select(outbox.c.event_type)
                .where(outbox.c.community_id == community_id)
                .order_by(outbox.c.seq)
            )
        ]
    assert types.count("PaymentFailed") == 3
    assert types[-1] == "SubscriptionChanged"


async def test_a_past_due_subscriber_pays_with_a_new_card_and_becomes_active(
    billing: Billing,
) -> None:
    community_id = await community(billing)
    product_id = await plan(billing, community_id, amount=900, trial_days=1)
    made = await subscribe(billing, community_id, product_id, method="pm_card_chargeDeclined")
    await reaches(billing, community_id, made.subscription.id, PAST_DUE)

    await billing.stub.ReactivateSubscription(
        pb.ReactivateSubscriptionRequest(
            community_id=community_id,
            subscription_id=made.subscription.id,
            payment_method="pm_card_visa",
        ),
        metadata=billing.auth("mia"),
    )
    active = await reaches(billing, community_id, made.subscription.id, ACTIVE)
    assert active.failed_attempts == 0
    assert (await paid_charges(billing, community_id))[:1] == [900]
    assert (await mrr_moves(billing, community_id))[:1] == [(events.MRR_MOVE_KIND_NEW, 900, "EUR")]
    await cancel(billing, community_id, made.subscription.id)


async def test_plan_changes_are_prorated_and_move_mrr_per_currency(billing: Billing) -> None:
    community_id = await community(billing)
    basic = await plan(billing, community_id, amount=1000)
    plus = await plan(billing, community_id, amount=3000)
    yearly_usd = await plan(
        billing, community_id, amount=12000, currency="USD", period=pb.BILLING_PERIOD_YEARLY
    )

    made = await subscribe(billing, community_id, basic)
    assert made.subscription.state == INCOMPLETE
    assert made.charge.amount.amount_minor == 1000
    assert made.charge.provider_payment_id.startswith("pi_")
    sub = await reaches(billing, community_id, made.subscription.id, ACTIVE)

    up = await billing.stub.ChangeSubscriptionPlan(
        pb.ChangeSubscriptionPlanRequest(
            community_id=community_id, subscription_id=sub.id, product_id=plus
        ),
        metadata=billing.auth("mia"),
    )
    # The difference for what is left of the period, at most the whole difference.
    assert 0 < up.charge.amount.amount_minor <= 2000
    assert up.subscription.pending_product_id == plus
    moved = await reaches(billing, community_id, sub.id, ACTIVE, product_id=plus)
    assert moved.price.amount_minor == 3000
    assert [p for p, now in await access_of(billing, community_id, "mia") if now] == [plus]

    down = await billing.stub.ChangeSubscriptionPlan(
        pb.ChangeSubscriptionPlanRequest(
            community_id=community_id, subscription_id=sub.id, product_id=basic
        ),
        metadata=billing.auth("mia"),
    )
    assert not down.HasField("charge")
    assert down.subscription.product_id == basic

    # Another currency is another MRR: never added to the euros.
    usd = await subscribe(billing, community_id, yearly_usd, user="max")
    await reaches(billing, community_id, usd.subscription.id, ACTIVE)

    moves = await mrr_moves(billing, community_id)
    eur = [(kind, amount) for kind, amount, currency in moves if currency == "EUR"]
    assert eur[0] == (events.MRR_MOVE_KIND_NEW, 1000)
    assert eur[1] == (events.MRR_MOVE_KIND_EXPANSION, 2000)
    assert eur[2] == (events.MRR_MOVE_KIND_CONTRACTION, -2000)
    assert (events.MRR_MOVE_KIND_NEW, 1000, "USD") in moves  # a twelfth of the yearly price
    await cancel(billing, community_id, sub.id)
    await cancel(billing, community_id, usd.subscription.id, user="max")


async def test_cancel_runs_to_the_period_end_and_a_reactivation_after_it_counts_as_such(
    billing: Billing,
) -> None:
    community_id = await community(billing)
    product_id = await plan(billing, community_id, amount=500)
    made = await subscribe(billing, community_id, product_id)
    sub = await reaches(billing, community_id, made.subscription.id, ACTIVE)

    canceled = await cancel(billing, community_id, sub.id)
    assert canceled.state == CANCELED
    undone = await billing.stub.ReactivateSubscription(
        pb.ReactivateSubscriptionRequest(community_id=community_id, subscription_id=sub.id),
        metadata=billing.auth("mia"),
    )
    assert undone.subscription.state == ACTIVE
    await cancel(billing, community_id, sub.id)
    await reaches(billing, community_id, sub.id, ENDED)

    again = await billing.stub.ReactivateSubscription(
        pb.ReactivateSubscriptionRequest(community_id=community_id, subscription_id=sub.id),
        metadata=billing.auth("mia"),
    )
    assert again.subscription.state == INCOMPLETE
    await reaches(billing, community_id, sub.id, ACTIVE)
    kinds = [kind for kind, _, _ in await mrr_moves(billing, community_id)]
    assert kinds[:3] == [
        events.MRR_MOVE_KIND_NEW,
        events.MRR_MOVE_KIND_CHURN,
        events.MRR_MOVE_KIND_REACTIVATION,
    ]
    await cancel(billing, community_id, sub.id)


async def test_bad_requests_are_refused_naming_the_field_and_nothing_is_written(
    billing: Billing,
) -> None:
    community_id = await community(billing)
    course = await plan(
        billing, community_id, kind=pb.PRODUCT_KIND_PAID_COURSE, period=pb.BILLING_PERIOD_ONE_OFF
    )
    product_id = await plan(billing, community_id, trial_days=5)

    with pytest.raises(grpc.aio.AioRpcError) as not_a_plan:
        await subscribe(billing, community_id, course)
    assert not_a_plan.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "product_id" in field_violations(not_a_plan.value)

    made = await subscribe(billing, community_id, product_id)
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await subscribe(billing, community_id, product_id)
    assert twice.value.code() == grpc.StatusCode.ALREADY_EXISTS

    with pytest.raises(grpc.aio.AioRpcError) as someone_else:
        await cancel(billing, community_id, made.subscription.id, user="max")
    assert someone_else.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
        await cancel(billing, await community(billing), made.subscription.id, user="olga")
    assert elsewhere.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as no_card:
        await billing.stub.ReactivateSubscription(
            pb.ReactivateSubscriptionRequest(
                community_id=community_id, subscription_id=made.subscription.id
            ),
            metadata=billing.auth("mia"),
        )
    assert no_card.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    sub = await get(billing, community_id, made.subscription.id)
    assert sub.state == TRIALING
    assert sub.version == 1
    await cancel(billing, community_id, sub.id)


async def test_a_member_subscribes_changes_and_cancels_through_the_cli(billing: Billing) -> None:
    community_id = await community(billing)
    basic = await plan(billing, community_id, amount=700, trial_days=3)
    plus = await plan(billing, community_id, amount=1400, trial_days=3)
    env = {
        "STUDYHALL_DATA_DIR": str(billing.data_dir),
        "STUDYHALL_BILLING_ADDRESS": billing.running.server.address,
        "COLUMNS": "200",
    }

    async def cli(*args: str) -> str:
        result = await asyncio.to_thread(
            CliRunner().invoke, app, list(args), env=env, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    made_coupon = json.loads(
        await cli(
            "coupon", "create", community_id, "HALF", "--percent-off", "50",
            "--duration", "repeating", "--periods", "2", "--as", "olga", "--json",
        )
    )  # fmt: skip
    assert made_coupon["duration"] == "COUPON_DURATION_REPEATING"
    assert "HALF" in await cli("coupon", "list", community_id, "--as", "olga")
    made = json.loads(
        await cli(
            "subscription", "subscribe", community_id, basic, "--coupon-code", "HALF",
            "--as", "mia", "--json",
        )
    )  # fmt: skip
    assert made["subscription"]["discount_periods_left"] == 2
    sub_id = made["subscription"]["id"]
    assert made["subscription"]["state"] == TRIALING
    changed = await cli("subscription", "change", community_id, sub_id, plus, "--as", "mia")
    assert changed.startswith(f"subscription {sub_id}: trialing")
    listed = json.loads(await cli("subscription", "list", community_id, "--as", "olga", "--json"))
    assert [s["product_id"] for s in listed["subscriptions"]] == [plus]
    canceled = await cli("subscription", "cancel", community_id, sub_id, "--as", "mia")
    assert canceled.startswith(f"subscription {sub_id}: canceled")
    shown = json.loads(
        await cli("subscription", "show", community_id, sub_id, "--as", "mia", "--json")
    )
    assert shown["state"] == CANCELED


async def coupon(billing: Billing, community_id: str, **fields: object) -> pb.Coupon:
    made = await billing.stub.CreateCoupon(
        pb.CreateCouponRequest(community_id=community_id, **fields),  # type: ignore[arg-type]
        metadata=billing.auth("olga"),
    )
    found: pb.Coupon = made.coupon
    return found


async def test_a_coupon_once_discounts_the_first_paid_period_and_mrr_follows(
    billing: Billing,
) -> None:
    community_id = await community(billing)
    product_id = await plan(billing, community_id, amount=1000)
    await coupon(
        billing, community_id, code="WELCOME20", percent_off=20, duration=pb.COUPON_DURATION_ONCE
    )
    made = await subscribe(billing, community_id, product_id, coupon="WELCOME20")
    assert made.charge.amount.amount_minor == 800
    assert made.subscription.discount_periods_left == 1
    sub = await reaches(billing, community_id, made.subscription.id, ACTIVE)
    assert sub.discount_periods_left == 0
    await eventually(
        lambda: _at_least(paid_charges(billing, community_id), 2), "a renewal paid", WAIT
    )
    await cancel(billing, community_id, sub.id)
    assert (await paid_charges(billing, community_id))[:2] == [800, 1000]
    moves = await mrr_moves(billing, community_id)
    assert moves[:2] == [
        (events.MRR_MOVE_KIND_NEW, 800, "EUR"),
        (events.MRR_MOVE_KIND_EXPANSION, 200, "EUR"),
    ]


async def test_coupons_are_refused_when_expired_of_another_currency_or_outside_their_segment(
    billing: Billing,
) -> None:
    members = billing.members
    hall = await Hall.create(members)
    await hall.join("mia")
    segment = await ProfilesServiceStub(members.channel).CreateSegment(
        profiles_pb.CreateSegmentRequest(
            community_id=hall.id, name="everyone", rule=json.dumps({"points_at_least": 0})
        ),
        metadata=hall.auth("olga"),
    )
    community_id = hall.id
    await grant(billing.running, community_id, "olga", Role.OWNER)
    for member in ("mia", "max"):
        await grant(billing.running, community_id, member, Role.MEMBER)
    product_id = await plan(billing, community_id, amount=1000, trial_days=5)

    limited = await coupon(
        billing,
        community_id,
        code="INSIDERS",
        amount_off=pb.Money(currency="EUR", amount_minor=300),
        duration=pb.COUPON_DURATION_FOREVER,
        segment_id=segment.segment.id,
    )
    assert limited.eligible_members == 2  # olga and mia; max never joined in members
    with pytest.raises(grpc.aio.AioRpcError) as outsider:
        await subscribe(billing, community_id, product_id, user="max", coupon="INSIDERS")
    assert outsider.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    insider = await subscribe(billing, community_id, product_id, coupon="INSIDERS")
    assert insider.subscription.coupon_id == limited.id
    assert insider.subscription.discount_periods_left == -1

    await coupon(
        billing,
        community_id,
        code="DOLLARS",
        amount_off=pb.Money(currency="USD", amount_minor=100),
        duration=pb.COUPON_DURATION_ONCE,
    )
    with pytest.raises(grpc.aio.AioRpcError) as dollars:
        await subscribe(billing, community_id, product_id, user="max", coupon="DOLLARS")
    assert dollars.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "coupon_code" in field_violations(dollars.value)

    # Whole seconds far enough ahead that a slow machine still creates it before it expires.
    expires = int(datetime.now(UTC).timestamp()) + 4
    await coupon(
        billing,
        community_id,
        code="FLASH",
        percent_off=50,
        duration=pb.COUPON_DURATION_REPEATING,
        duration_periods=2,
        expire_time=Timestamp(seconds=expires),
    )
    await asyncio.sleep(max(0.0, expires - datetime.now(UTC).timestamp()) + 0.2)
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await subscribe(billing, community_id, product_id, user="max", coupon="FLASH")
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await coupon(billing, community_id, code="BAD CODE", percent_off=120)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"code", "percent_off", "duration"} <= set(field_violations(bad.value))
    listed = await billing.stub.ListCoupons(
        pb.ListCouponsRequest(community_id=community_id), metadata=billing.auth("olga")
    )
    assert [c.code for c in listed.coupons] == ["FLASH", "DOLLARS", "INSIDERS"]
    await cancel(billing, community_id, insider.subscription.id)


async def test_erasure_ends_a_running_subscription_as_churn_and_forgets_the_subscriber(
    billing: Billing,
) -> None:
    community_id = await community(billing)
    product_id = await plan(billing, community_id, amount=600)
    made = await subscribe(billing, community_id, product_id)
    await reaches(billing, community_id, made.subscription.id, ACTIVE)

    await billing.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=community_id, confirm=True), metadata=billing.auth("mia")
    )
    gone = await get(billing, community_id, made.subscription.id)
    assert gone.state == ENDED
    assert gone.user_id == ""
    moves = await mrr_moves(billing, community_id)
    assert moves[0] == (events.MRR_MOVE_KIND_NEW, 600, "EUR")
    assert moves[-1] == (events.MRR_MOVE_KIND_CHURN, -600, "EUR")
    assert sum(amount for _, amount, _ in moves) == 0
    async with billing.running.deps.database.read() as session:
        jobs = await session.scalar(
            select(func.count())
            .select_from(scheduled_jobs)
            .where(scheduled_jobs.c.key == made.subscription.id)
        )
    assert jobs == 0
