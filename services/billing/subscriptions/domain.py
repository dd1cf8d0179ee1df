"""Subscriptions: recurring payments for a membership plan. Rules only, no I/O; every rule
takes `now`.

A subscription starts in a free trial (TRIALING) or waits for its first payment
(INCOMPLETE); a paid period makes it ACTIVE. At the period's end the scheduler renews it: a
renewal charge, and when that fails, PAST_DUE with retries at the configured moments after
the period's end while access continues, until the grace runs out (ENDED). A cancel stops
the next renewal (CANCELED, running to the period's end); a reactivation undoes it, or after
the end subscribes again. A move to another plan is prorated for what is left of the period.

`mrr_minor` is what the subscription adds to the community's MRR now: a paying period
counts its monthly amount (a yearly price a twelfth, rounded), anything else zero. Every
MrrMoved is the difference between two values of it, so moves add up to the MRR.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import IntEnum

from services.billing.catalog.domain import RECURRING, BillingPeriod, Product, ProductKind
from services.billing.subscriptions.coupons import Coupon, discounted
from services.kit.errors import FailedPrecondition, InvalidArgument

# The scheduler's jobs (services/kit/schedule.py): a renewal (at the period's end, at each
# retry and at the end of the grace), and asking the provider for a renewal's charge.
RENEW = "renew_subscription"
COLLECT = "collect_subscription_charge"


class State(IntEnum):
    """SubscriptionState of billing_events.proto."""

    TRIALING = 1
    ACTIVE = 2
    PAST_DUE = 3
    CANCELED = 4
    ENDED = 5
    INCOMPLETE = 6


class MrrKind(IntEnum):
    """MrrMoveKind of billing_events.proto."""

    NEW = 1
    EXPANSION = 2
    CONTRACTION = 3
    CHURN = 4
    REACTIVATION = 5


@dataclass(frozen=True)
class Timing:
    """How long things take: settings in seconds, so tests run a month in seconds."""

    day_seconds: float = 86400
    # 0: calendar months and years.
    month_seconds: float = 0
    # When a failed renewal is tried again, after the period's end.
    retries: tuple[float, ...] = (86400, 3 * 86400, 5 * 86400)
    grace_seconds: float = 7 * 86400

    def trial_end(self, start: datetime, days: int) -> datetime:
        return start + timedelta(seconds=days * self.day_seconds)

    def period_end(self, start: datetime, period: BillingPeriod) -> datetime:
        months = 12 if period is BillingPeriod.YEARLY else 1
        if self.month_seconds:
            return start + timedelta(seconds=months * self.month_seconds)
        return add_months(start, months)

    def grace_end(self, period_end: datetime) -> datetime:
        return period_end + timedelta(seconds=self.grace_seconds)

    def next_attempt(self, period_end: datetime, failed_attempts: int) -> datetime | None:
        """When to try again after `failed_attempts` failures of one renewal; None when the
        retries are spent (or would come after the grace), so it ends at the grace's end."""
        if failed_attempts > len(self.retries):
            return None
        at = period_end + timedelta(seconds=self.retries[failed_attempts - 1])
        return at if at < self.grace_end(period_end) else None


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later; the month's last day when it is shorter."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def monthly_minor(amount_minor: int, period: BillingPeriod) -> int:
    """A price's share of MRR: a yearly price counts a twelfth, rounded to the nearest unit."""
    if period is BillingPeriod.YEARLY:
        return (amount_minor + 6) // 12
    return amount_minor


def mrr_kind(before: int, after: int, churned: bool) -> MrrKind | None:
    """What a change of a subscription's MRR from `before` to `after` is; None for none."""
    if before == after:
        return None
    if before == 0:
        return MrrKind.REACTIVATION if churned else MrrKind.NEW
    if after == 0:
        return MrrKind.CHURN
    return MrrKind.EXPANSION if after > before else MrrKind.CONTRACTION


@dataclass(frozen=True)
class Subscription:
    id: str
    community_id: str
    user_id: str
    product_id: str
    price_id: str
    currency: str
    amount_minor: int
    billing_period: BillingPeriod
    state: State
    payment_method: str
    created_at: datetime
    updated_at: datetime
    trialing: bool = False
    period_start: datetime | None = None
    period_end: datetime | None = None
    failed_attempts: int = 0
    next_attempt_at: datetime | None = None
    credit_minor: int = 0
    pending_product_id: str = ""
    latest_charge_id: str = ""
    entitlement_id: str = ""
    mrr_minor: int = 0
    churned: bool = False
    coupon_id: str = ""
    percent_off: int = 0
    amount_off_minor: int = 0
    # Paid periods the coupon still discounts; -1 for every one.
    discount_periods_left: int = 0
    version: int = 1

    @property
    def live(self) -> bool:
        return self.state is not State.ENDED

    @property
    def live_key(self) -> str | None:
        """One live subscription per member and plan."""
        return f"{self.community_id}/{self.user_id}/{self.product_id}" if self.live else None

    @property
    def period_price(self) -> int:
        """What the next paid period costs: the price, less the coupon's discount while it
        lasts."""
        if self.discount_periods_left == 0:
            return self.amount_minor
        return discounted(self.amount_minor, self.percent_off, self.amount_off_minor)

    @property
    def paying_mrr(self) -> int:
        return monthly_minor(self.period_price, self.billing_period)

    @property
    def renewal_minor(self) -> int:
        """What the next renewal charges: the period's price, less the credit a cheaper plan
        left."""
        return max(self.period_price - self.credit_minor, 0)

    @property
    def discount_after_a_period(self) -> int:
        left = self.discount_periods_left
        return left - 1 if left > 0 else left


@dataclass(frozen=True)
class Change:
    """A subscription after a change, and how it moved MRR."""

    before: Subscription
    after: Subscription

    @property
    def mrr_moved(self) -> int:
        return self.after.mrr_minor - self.before.mrr_minor

    @property
    def mrr_kind(self) -> MrrKind | None:
        return mrr_kind(self.before.mrr_minor, self.after.mrr_minor, self.before.churned)


def _changed(sub: Subscription, now: datetime, **fields: object) -> Change:
    after = replace(sub, updated_at=now, version=sub.version + 1, **fields)  # type: ignore[arg-type]
    return Change(sub, after)


def require_plan(product: Product, field: str = "product_id") -> None:
    """Only a recurring membership plan on sale is subscribed to."""
    if product.kind is not ProductKind.MEMBERSHIP_PLAN or product.billing_period not in RECURRING:
        raise InvalidArgument.field(
            field,
            f"product {product.id} is not a monthly or yearly membership plan; buy it with "
            "CreateCheckout",
        )
    if not product.on_sale:
        raise FailedPrecondition(f"product {product.id} is no longer on sale")


def start(
    community_id: str,
    user_id: str,
    product: Product,
    payment_method: str,
    timing: Timing,
    now: datetime,
    coupon: Coupon | None = None,
) -> Subscription:
    """A new subscription: in its trial when the plan has one, else waiting for its first
    payment; with the coupon's discount for its first paid periods."""
    require_plan(product)
    trial = product.trial_days > 0
    return Subscription(
        id=str(uuid.uuid4()),
        community_id=community_id,
        user_id=user_id,
        product_id=product.id,
        price_id=product.price_id,
        currency=product.price.currency,
        amount_minor=product.price.amount_minor,
        billing_period=product.billing_period,
        state=State.TRIALING if trial else State.INCOMPLETE,
        payment_method=payment_method,
        created_at=now,
        updated_at=now,
        trialing=trial,
        period_start=now if trial else None,
        period_end=timing.trial_end(now, product.trial_days) if trial else None,
        coupon_id=coupon.id if coupon else "",
        percent_off=coupon.percent_off if coupon else 0,
        amount_off_minor=coupon.amount_off_minor if coupon else 0,
        discount_periods_left=coupon.periods if coupon else 0,
    )


def first_paid(sub: Subscription, timing: Timing, now: datetime) -> Change:
    """The first period was paid (a new subscription, or one subscribed again after its end):
    a period starts now."""
    return _changed(
        sub,
        now,
        state=State.ACTIVE,
        trialing=False,
        period_start=now,
        period_end=timing.period_end(now, sub.billing_period),
        failed_attempts=0,
        next_attempt_at=None,
        mrr_minor=sub.paying_mrr,
        discount_periods_left=sub.discount_after_a_period,
    )


def first_failed(sub: Subscription, now: datetime) -> Change:
    """The first payment was declined: it never started."""
    return _changed(sub, now, state=State.ENDED, mrr_minor=0)


def renewed(sub: Subscription, paid_from: datetime, timing: Timing, now: datetime) -> Change:
    """A renewal was paid: the next period runs on from the end of the last one, whatever
    attempt paid it, so a subscriber never pays twice for the same days. Canceled while it
    was under way, it stays canceled and ends with the period it paid for."""
    return _changed(
        sub,
        now,
        state=State.CANCELED if sub.state is State.CANCELED else State.ACTIVE,
        trialing=False,
        period_start=paid_from,
        period_end=timing.period_end(paid_from, sub.billing_period),
        failed_attempts=0,
        next_attempt_at=None,
        credit_minor=max(sub.credit_minor - sub.period_price, 0),
        mrr_minor=sub.paying_mrr,
        discount_periods_left=sub.discount_after_a_period,
    )


def renewal_failed(sub: Subscription, attempt: int, timing: Timing, now: datetime) -> Change:
    """A renewal attempt failed: past due, with the next try (none when they are spent)."""
    assert sub.period_end is not None
    return _changed(
        sub,
        now,
        state=State.PAST_DUE,
        failed_attempts=attempt,
        next_attempt_at=timing.next_attempt(sub.period_end, attempt),
    )


def ended(sub: Subscription, now: datetime) -> Change:
    """It is over: the period ran out after a cancel, or the retries gave up."""
    return _changed(
        sub,
        now,
        state=State.ENDED,
        next_attempt_at=None,
        pending_product_id="",
        mrr_minor=0,
        churned=sub.churned or sub.mrr_minor > 0,
    )


def renewable(sub: Subscription) -> bool:
    return sub.state in (State.TRIALING, State.ACTIVE, State.PAST_DUE)


def cancel(sub: Subscription, now: datetime) -> Change:
    """No more renewals: it runs to the period's end (and through a period whose renewal
    was already under way and gets paid); past due, the period is over, so it ends now."""
    if sub.state in (State.ACTIVE, State.TRIALING):
        return _changed(sub, now, state=State.CANCELED, pending_product_id="")
    if sub.state is State.PAST_DUE:
        return ended(sub, now)
    raise FailedPrecondition(
        f"subscription {sub.id} is {sub.state.name.lower()}: only a trialing, active or past "
        "due subscription is canceled"
    )


def undo_cancel(sub: Subscription, now: datetime) -> Change:
    """A cancel taken back before the period ended: it renews again."""
    if sub.state is not State.CANCELED:
        raise FailedPrecondition(f"subscription {sub.id} is not canceled")
    return _changed(sub, now, state=State.TRIALING if sub.trialing else State.ACTIVE)


def paid_differently(sub: Subscription, payment_method: str, now: datetime) -> Change:
    """A past due subscriber gives a new payment method: the renewal is tried again now."""
    if sub.state is not State.PAST_DUE:
        raise FailedPrecondition(f"subscription {sub.id} is not past due")
    if not payment_method:
        raise InvalidArgument.field(
            "payment_method", "a past due subscription is reactivated with a new payment method"
        )
    return _changed(sub, now, payment_method=payment_method, next_attempt_at=now)


def restart(sub: Subscription, product: Product, payment_method: str, now: datetime) -> Change:
    """Subscribed again after the end: at the plan's price now, waiting for a first payment
    (no second trial)."""
    if sub.state is not State.ENDED:
        raise FailedPrecondition(f"subscription {sub.id} has not ended")
    require_plan(product)
    return _changed(
        sub,
        now,
        state=State.INCOMPLETE,
        price_id=product.price_id,
        currency=product.price.currency,
        amount_minor=product.price.amount_minor,
        payment_method=payment_method or sub.payment_method,
        trialing=False,
        failed_attempts=0,
        next_attempt_at=None,
        credit_minor=0,
        discount_periods_left=0,
    )


def prorated(sub: Subscription, new_amount_minor: int, now: datetime) -> int:
    """What a move to a plan of `new_amount_minor` per period costs for the rest of this
    period: the new price's share of what is left less the old price's, rounded to the
    nearest unit; negative when the new plan is cheaper."""
    assert sub.period_start is not None
    assert sub.period_end is not None
    length = (sub.period_end - sub.period_start).total_seconds()
    left = max((sub.period_end - now).total_seconds(), 0.0)
    share = left / length if length > 0 else 0.0
    return round((new_amount_minor - sub.amount_minor) * share)


def check_plan_change(sub: Subscription, product: Product) -> None:
    require_plan(product)
    if sub.state not in (State.ACTIVE, State.TRIALING):
        raise FailedPrecondition(
            f"subscription {sub.id} is {sub.state.name.lower()}: only a trialing or active "
            "subscription changes plan"
        )
    if sub.pending_product_id:
        raise FailedPrecondition(
            f"subscription {sub.id} waits for the payment of a move to product "
            f"{sub.pending_product_id}"
        )
    if product.id == sub.product_id:
        raise FailedPrecondition(f"subscription {sub.id} is on product {product.id} already")
    if product.price.currency != sub.currency or product.billing_period != sub.billing_period:
        raise InvalidArgument.field(
            "product_id",
            f"product {product.id} is billed in {product.price.currency} "
            f"{product.billing_period.name.lower()}; the subscription in {sub.currency} "
            f"{sub.billing_period.name.lower()}: subscribe to it separately",
        )


def moved_to(sub: Subscription, product: Product, credit: int, now: datetime) -> Change:
    """On the new plan from now, to the same period end; a cheaper plan's unused share of
    the old price stays as credit for the next renewals."""
    paying = sub.state is State.ACTIVE
    return _changed(
        sub,
        now,
        product_id=product.id,
        price_id=product.price_id,
        amount_minor=product.price.amount_minor,
        credit_minor=sub.credit_minor + credit,
        pending_product_id="",
        mrr_minor=(
            monthly_minor(
                replace(sub, amount_minor=product.price.amount_minor).period_price,
                sub.billing_period,
            )
            if paying
            else 0
        ),
    )


def awaiting_move(sub: Subscription, product_id: str, charge_id: str, now: datetime) -> Change:
    return _changed(sub, now, pending_product_id=product_id, latest_charge_id=charge_id)


def move_failed(sub: Subscription, now: datetime) -> Change:
    return _changed(sub, now, pending_product_id="")


def with_charge(sub: Subscription, charge_id: str, now: datetime) -> Change:
    return _changed(sub, now, latest_charge_id=charge_id)


def with_entitlement(sub: Subscription, entitlement_id: str) -> Subscription:
    return replace(sub, entitlement_id=entitlement_id)


def charge_id_for(
    subscription_id: str, purpose: str, period_end: datetime | None, attempt: int
) -> str:
    """A renewal charge's id, the same whenever its job runs again: the provider's
    idempotency key, so a job run twice (a replica died after the provider call) never
    collects twice."""
    stamp = period_end.isoformat() if period_end else ""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription_id}/{purpose}/{stamp}/{attempt}"))
