"""Refunding a ticket whose seat hold expired (docs/decisions/0047).

The events service holds a seat while a member pays for an activity's ticket; when the hold
runs out first, it publishes RegistrationCancelled with reason hold_expired and the
ticket's product. Billing then pays back the member's purchase of that product: the newest
charge that bought it alone and is not paid back yet. The refund is recorded in the
consumer's transaction (with its inbox entry: once per fact), and sent to the provider
after the commit, as RefundCharge does; the provider's webhook settles it and the full
refund revokes the entitlement."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.checkout import domain
from services.billing.checkout.domain import ChargeState, Refund, RefundState
from services.billing.checkout.store import ChargeRepository, RefundRepository
from services.billing.entitlements.domain import Source
from services.billing.payments.provider import PaymentProvider, ProviderRefused
from services.billing.store.tables import entitlements
from services.kit.database import Database

REASON = "the seat held for this ticket expired before the payment arrived"


async def refund_ticket(
    session: AsyncSession, community_id: str, user_id: str, product_id: str, now: datetime
) -> Refund | None:
    """Records the refund of the member's purchase of the ticket; None when there is none
    left to pay back (never bought, bought with other products, or refunded already)."""
    charge_ids = await session.scalars(
        select(entitlements.c.charge_id)
        .where(
            entitlements.c.community_id == community_id,
            entitlements.c.user_id == user_id,
            entitlements.c.product_id == product_id,
            entitlements.c.source == int(Source.PURCHASE),
            entitlements.c.charge_id != "",
        )
        .order_by(entitlements.c.created_at.desc())
    )
    charges, refunds = ChargeRepository(session), RefundRepository(session)
    for charge_id in list(charge_ids):
        charge = await charges.get(charge_id, community_id, for_update=True)
        if charge is None or charge.state is not ChargeState.SUCCEEDED:
            continue
        if list(charge.product_ids) != [product_id]:
            continue  # a basket: what the ticket cost in it is not ours to split
        taken = await refunds.total(charge.id, [RefundState.PENDING, RefundState.SUCCEEDED])
        left = domain.refundable(charge, taken)
        if left <= 0:
            continue
        refund = domain.new_refund(charge, 0, left, "", REASON, now)
        await refunds.add(refund)
        return refund
    return None


async def submit(database: Database, provider: PaymentProvider, refund_id: str) -> None:
    """Sends a recorded refund to the provider (its id is the idempotency key)."""
    async with database.read() as session:
        refund = await RefundRepository(session).get(refund_id)
        if refund is None or refund.provider_refund_id:
            return
        charge = await ChargeRepository(session).get(refund.charge_id)
        if charge is None:
            return
    try:
        answer = await provider.create_refund(
            idempotency_key=refund.id,
            payment_id=charge.provider_payment_id,
            amount_minor=refund.amount_minor,
            metadata={"refund_id": refund.id, "charge_id": charge.id},
        )
    except ProviderRefused as error:
        async with database.write() as session:
            refunds = RefundRepository(session)
            current = await refunds.get(refund_id, for_update=True)
            if current is not None and current.state is RefundState.PENDING:
                await refunds.save(domain.refund_refused(current, str(error), datetime.now(UTC)))
        return
    async with database.write() as session:
        refunds = RefundRepository(session)
        current = await refunds.get(refund_id, for_update=True)
        if current is not None and not current.provider_refund_id:
            await refunds.save(domain.refund_submitted(current, answer.id))
