"""The facts about checkouts, payments and refunds, staged in billing's outbox in the
transaction of the change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.checkout.domain import Charge, Refund
from services.billing.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.billing.v1 import billing_events_pb2 as events
from studyhall.billing.v1 import billing_service_pb2 as pb

FAILURE_REASONS = {
    "declined": events.PAYMENT_FAILURE_REASON_DECLINED,
    "authentication_required": events.PAYMENT_FAILURE_REASON_AUTHENTICATION_REQUIRED,
    "payment_method_unusable": events.PAYMENT_FAILURE_REASON_PAYMENT_METHOD_UNUSABLE,
}


def _money(currency: str, amount: int) -> pb.Money:
    return pb.Money(currency=currency, amount_minor=amount)


async def completed(session: AsyncSession, charge: Charge, now: datetime) -> None:
    for product_id in charge.product_ids:
        await OUTBOX.add(
            session,
            events.CheckoutCompleted(
                checkout_id=charge.id,
                community_id=charge.community_id,
                user_id=charge.user_id,
                product_id=product_id,
                amount=_money(charge.currency, charge.amount_minor),
                payment_id=charge.id,
                complete_time=timestamp(now),
            ),
            community_id=charge.community_id,
            subject=f"communities/{charge.community_id}/charges/{charge.id}",
        )


async def failed(session: AsyncSession, charge: Charge, now: datetime) -> None:
    await OUTBOX.add(
        session,
        events.PaymentFailed(
            payment_id=charge.id,
            community_id=charge.community_id,
            user_id=charge.user_id,
            product_id=charge.product_ids[0],
            amount=_money(charge.currency, charge.amount_minor),
            reason=FAILURE_REASONS.get(
                charge.failure_reason, events.PAYMENT_FAILURE_REASON_PROVIDER_ERROR
            ),
            attempt=1,
            fail_time=timestamp(now),
        ),
        community_id=charge.community_id,
        subject=f"communities/{charge.community_id}/charges/{charge.id}",
    )


async def refunded(session: AsyncSession, refund: Refund, charge: Charge, now: datetime) -> None:
    await OUTBOX.add(
        session,
        events.Refunded(
            refund_id=refund.id,
            community_id=refund.community_id,
            user_id=refund.user_id,
            product_id=charge.product_ids[0],
            payment_id=charge.id,
            amount=_money(refund.currency, refund.amount_minor),
            by_user_id=refund.by_user_id,
            refund_time=timestamp(now),
        ),
        community_id=refund.community_id,
        subject=f"communities/{refund.community_id}/refunds/{refund.id}",
    )
