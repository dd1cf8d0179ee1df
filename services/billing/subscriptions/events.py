"""The facts about subscriptions, staged in billing's outbox in the transaction of the
change: SubscriptionChanged with the whole subscription, MrrMoved when its share of the
community's MRR moved (per currency, never converted), PaymentFailed for a failed renewal
and CheckoutCompleted for a paid first period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.checkout.domain import Charge
from services.billing.store.outbox import OUTBOX
from services.billing.subscriptions.domain import Change, Subscription
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.billing.v1 import billing_events_pb2 as events
from studyhall.billing.v1 import billing_service_pb2 as pb

FAILURE_REASONS = {
    "declined": events.PAYMENT_FAILURE_REASON_DECLINED,
    "authentication_required": events.PAYMENT_FAILURE_REASON_AUTHENTICATION_REQUIRED,
    "payment_method_unusable": events.PAYMENT_FAILURE_REASON_PAYMENT_METHOD_UNUSABLE,
}


def _subject(sub: Subscription) -> str:
    return f"communities/{sub.community_id}/subscriptions/{sub.id}"


async def created(session: AsyncSession, sub: Subscription, now: datetime) -> None:
    await _changed(session, sub, None, now)


async def changed(session: AsyncSession, change: Change, now: datetime) -> None:
    """SubscriptionChanged, and MrrMoved when the change moved MRR."""
    await _changed(session, change.after, change.before, now)
    kind = change.mrr_kind
    if kind is None:
        return
    sub = change.after
    await OUTBOX.add(
        session,
        events.MrrMoved(
            community_id=sub.community_id,
            kind=events.MrrMoveKind.ValueType(int(kind)),
            amount_minor=change.mrr_moved,
            currency=sub.currency,
            subscription_id=sub.id,
            move_time=timestamp(now),
        ),
        community_id=sub.community_id,
        subject=_subject(sub),
    )


async def _changed(
    session: AsyncSession, sub: Subscription, before: Subscription | None, now: datetime
) -> None:
    await OUTBOX.add(
        session,
        events.SubscriptionChanged(
            subscription_id=sub.id,
            community_id=sub.community_id,
            user_id=sub.user_id,
            product_id=sub.product_id,
            state=events.SubscriptionState.ValueType(int(sub.state)),
            previous_state=events.SubscriptionState.ValueType(int(before.state) if before else 0),
            price=pb.Money(currency=sub.currency, amount_minor=sub.amount_minor),
            billing_period=pb.BillingPeriod.ValueType(int(sub.billing_period)),
            current_period_end=timestamp_or_none(sub.period_end),
            version=sub.version,
            change_time=timestamp(now),
        ),
        community_id=sub.community_id,
        subject=_subject(sub),
    )


async def payment_failed(
    session: AsyncSession,
    sub: Subscription,
    charge: Charge,
    attempt: int,
    next_attempt: datetime | None,
    now: datetime,
) -> None:
    await OUTBOX.add(
        session,
        events.PaymentFailed(
            payment_id=charge.id,
            community_id=charge.community_id,
            user_id=charge.user_id,
            product_id=charge.product_ids[0],
            subscription_id=sub.id,
            amount=pb.Money(currency=charge.currency, amount_minor=charge.amount_minor),
            reason=FAILURE_REASONS.get(
                charge.failure_reason, events.PAYMENT_FAILURE_REASON_PROVIDER_ERROR
            ),
            attempt=attempt,
            next_attempt_time=timestamp_or_none(next_attempt),
            fail_time=timestamp(now),
        ),
        community_id=charge.community_id,
        subject=f"communities/{charge.community_id}/charges/{charge.id}",
    )


async def first_paid(
    session: AsyncSession, sub: Subscription, charge: Charge, now: datetime
) -> None:
    await OUTBOX.add(
        session,
        events.CheckoutCompleted(
            checkout_id=charge.id,
            community_id=charge.community_id,
            user_id=charge.user_id,
            product_id=sub.product_id,
            amount=pb.Money(currency=charge.currency, amount_minor=charge.amount_minor),
            payment_id=charge.id,
            subscription_id=sub.id,
            complete_time=timestamp(now),
        ),
        community_id=charge.community_id,
        subject=f"communities/{charge.community_id}/charges/{charge.id}",
    )
