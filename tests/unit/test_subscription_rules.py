"""Subscription and coupon rules, which take `now`: periods, dunning times, proration, the
MRR each state counts and the kind of each move, discounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.billing.catalog.domain import BillingPeriod, Money, Product, ProductKind
from services.billing.subscriptions import domain
from services.billing.subscriptions.coupons import Duration, discounted, new_coupon
from services.billing.subscriptions.domain import MrrKind, State, Timing
from services.kit.errors import FailedPrecondition, InvalidArgument

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def plan(
    amount: int = 1200, period: BillingPeriod = BillingPeriod.MONTHLY, trial: int = 0
) -> Product:
    return Product(
        id="p1",
        community_id="c1",
        kind=ProductKind.MEMBERSHIP_PLAN,
        name="Plan",
        price=Money("EUR", amount),
        billing_period=period,
        trial_days=trial,
        price_id="price1",
    )


def test_calendar_months_keep_the_day_or_take_the_months_last() -> None:
    assert domain.add_months(NOW, 1) == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    assert domain.add_months(NOW, 12) == datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
    assert Timing(month_seconds=3).period_end(NOW, BillingPeriod.YEARLY) == NOW + timedelta(
        seconds=36
    )


def test_dunning_retries_come_at_their_offsets_and_stop_before_the_grace_ends() -> None:
    timing = Timing()
    assert timing.next_attempt(NOW, 1) == NOW + timedelta(days=1)
    assert timing.next_attempt(NOW, 3) == NOW + timedelta(days=5)
    assert timing.next_attempt(NOW, 4) is None
    late = Timing(retries=(86400, 10 * 86400), grace_seconds=7 * 86400)
    assert late.next_attempt(NOW, 2) is None


def test_a_yearly_price_counts_a_twelfth_rounded_and_moves_are_named_by_their_ends() -> None:
    assert domain.monthly_minor(12_006, BillingPeriod.YEARLY) == 1001
    assert domain.monthly_minor(1000, BillingPeriod.MONTHLY) == 1000
    assert domain.mrr_kind(0, 500, churned=False) is MrrKind.NEW
    assert domain.mrr_kind(0, 500, churned=True) is MrrKind.REACTIVATION
    assert domain.mrr_kind(500, 0, churned=False) is MrrKind.CHURN
    assert domain.mrr_kind(500, 800, churned=False) is MrrKind.EXPANSION
    assert domain.mrr_kind(800, 500, churned=False) is MrrKind.CONTRACTION
    assert domain.mrr_kind(500, 500, churned=False) is None


def test_a_trial_counts_no_mrr_until_its_first_renewal_is_paid() -> None:
    timing = Timing(day_seconds=1, month_seconds=10)
    sub = domain.start("c1", "u1", plan(trial=3), "pm_card_visa", timing, NOW)
    assert sub.state is State.TRIALING
    assert sub.period_end == NOW + timedelta(seconds=3)
    paid = domain.renewed(sub, sub.period_end, timing, NOW + timedelta(seconds=3))
    assert paid.after.state is State.ACTIVE
    assert paid.after.period_start == NOW + timedelta(seconds=3)
    assert (paid.mrr_kind, paid.mrr_moved) == (MrrKind.NEW, 1200)
    churn = domain.ended(paid.after, NOW + timedelta(seconds=20))
    assert (churn.mrr_kind, churn.mrr_moved) == (MrrKind.CHURN, -1200)
    assert churn.after.churned


def test_proration_charges_the_difference_for_what_is_left_of_the_period() -> None:
    timing = Timing(month_seconds=100)
    sub = domain.first_paid(
        domain.start("c1", "u1", plan(1000), "pm", timing, NOW), timing, NOW
    ).after
    assert domain.prorated(sub, 3000, NOW + timedelta(seconds=25)) == 1500
    assert domain.prorated(sub, 500, NOW + timedelta(seconds=50)) == -250
    assert domain.prorated(sub, 3000, NOW + timedelta(seconds=200)) == 0


def test_a_plan_change_keeps_currency_and_period() -> None:
    timing = Timing(month_seconds=100)
    sub = domain.first_paid(domain.start("c1", "u1", plan(), "pm", timing, NOW), timing, NOW).after
    with pytest.raises(InvalidArgument):
        domain.check_plan_change(
            sub, Product(**{**plan().__dict__, "id": "p2", "billing_period": BillingPeriod.YEARLY})
        )
    with pytest.raises(FailedPrecondition):
        domain.check_plan_change(sub, plan())


def test_coupons_discount_once_some_periods_or_for_ever() -> None:
    assert discounted(999, 20, 0) == 799  # 199.8 off, rounded to 200
    assert discounted(500, 0, 800) == 0
    once = new_coupon(
        community_id="c1", code="ONCE", percent_off=50, amount_off=None, duration=1,
        duration_periods=0, expires_at=None, segment_id="", created_by="o", now=NOW,
    )  # fmt: skip
    assert once.duration is Duration.ONCE
    timing = Timing(month_seconds=10)
    sub = domain.start("c1", "u1", plan(1000), "pm", timing, NOW, once)
    assert sub.period_price == 500
    first = domain.first_paid(sub, timing, NOW)
    assert (first.mrr_moved, first.after.period_price) == (500, 1000)
    assert first.after.period_end is not None
    second = domain.renewed(first.after, first.after.period_end, timing, NOW)
    assert (second.mrr_kind, second.mrr_moved) == (MrrKind.EXPANSION, 500)
    with pytest.raises(InvalidArgument) as bad:
        new_coupon(
            community_id="c1", code="no spaces", percent_off=0, amount_off=("eur", 0),
            duration=2, duration_periods=0, expires_at=NOW, segment_id="", created_by="o",
            now=NOW,
        )  # fmt: skip
    fields = {v.field for v in bad.value.violations}
    assert fields == {
        "code",
        "amount_off.currency",
        "amount_off.amount_minor",
        "duration_periods",
        "expire_time",
    }
