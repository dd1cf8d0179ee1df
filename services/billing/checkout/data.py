"""What billing holds about a member in charges, invoices and refunds, for ExportMyData and
EraseMyData (and MemberErased).

Erasure keeps the amounts: the books must still add up, and `billing verify` still checks
every charge and refund. What goes is who: the user id, the name and address on the
invoice, the payment method token (docs/decisions/0024-checkout-through-a-provider-port.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.checkout.domain import ChargeState, RefundState
from services.billing.store.tables import charges, invoices, refunds
from services.kit.database import utc

ERASED = ""


async def export_charges(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(charges)
        .where(charges.c.community_id == community_id, charges.c.user_id == user_id)
        .order_by(charges.c.created_at, charges.c.id)
    )
    return [
        {
            "id": row.id,
            "amount_minor": int(row.amount_minor),
            "currency": row.currency,
            "state": ChargeState(row.state).name.lower(),
            "product_ids": list(row.product_ids),
            "payment_method": row.payment_method,
            "create_time": utc(row.created_at),
        }
        for row in rows
    ]


async def export_invoices(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(invoices)
        .where(invoices.c.community_id == community_id, invoices.c.user_id == user_id)
        .order_by(invoices.c.created_at, invoices.c.id)
    )
    return [
        {
            "id": row.id,
            "number": int(row.number),
            "charge_id": row.charge_id,
            "currency": row.currency,
            "total_minor": int(row.total_minor),
            "lines": list(row.lines),
            "bill_to": row.bill_to,
            "create_time": utc(row.created_at),
        }
        for row in rows
    ]


async def export_refunds(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(refunds)
        .where(refunds.c.community_id == community_id, refunds.c.user_id == user_id)
        .order_by(refunds.c.created_at, refunds.c.id)
    )
    return [
        {
            "id": row.id,
            "charge_id": row.charge_id,
            "amount_minor": int(row.amount_minor),
            "currency": row.currency,
            "state": RefundState(row.state).name.lower(),
            "create_time": utc(row.created_at),
        }
        for row in rows
    ]


async def forget_buyer(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(invoices)
        .where(invoices.c.community_id == community_id, invoices.c.user_id == user_id)
        .values(user_id=ERASED, bill_to="")
    )
    await session.execute(
        update(refunds)
        .where(refunds.c.community_id == community_id, refunds.c.user_id == user_id)
        .values(user_id=ERASED)
    )
    await session.execute(
        update(charges)
        .where(charges.c.community_id == community_id, charges.c.user_id == user_id)
        .values(user_id=ERASED, payment_method="", version=charges.c.version + 1)
    )


EXPORTS = {"charges": export_charges, "invoices": export_invoices, "refunds": export_refunds}
ERASERS = (forget_buyer,)
