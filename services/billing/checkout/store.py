"""Charges, invoices and refunds in the billing database."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.checkout.domain import (
    Charge,
    ChargeState,
    Invoice,
    InvoiceLine,
    Refund,
    RefundState,
)
from services.billing.store.tables import charges, invoices, refunds
from services.kit.database import utc
from services.kit.paging import Position
from services.kit.versioned import update_versioned

# Built once: a group of checkouts writes each table with one multi-row insert, and reads
# each community's highest invoice number with the same statement.
_INSERT_CHARGES = charges.insert()
_INSERT_INVOICES = invoices.insert()
_NUMBERING_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_HIGHEST_NUMBER = select(func.max(invoices.c.number)).where(
    invoices.c.community_id == bindparam("community_id")
)


def _newest_first(
    table: Table, community_id: str, user_id: str, after: Position | None, limit: int
) -> Any:
    query = select(table).where(table.c.community_id == community_id)
    if user_id:
        query = query.where(table.c.user_id == user_id)
    if after is not None:
        created, item_id = after
        query = query.where(
            or_(
                table.c.created_at < created,
                and_(table.c.created_at == created, table.c.id < item_id),
            )
        )
    return query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)


class ChargeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(self, added: Sequence[Charge]) -> None:
        if added:
            await self.session.execute(_INSERT_CHARGES, [_charge_values(c) for c in added])

    async def save(self, charge: Charge) -> None:
        await update_versioned(self.session, charges, _charge_values(charge), ["id"])

    async def get(
        self, charge_id: str, community_id: str = "", *, for_update: bool = False
    ) -> Charge | None:
        query = select(charges).where(charges.c.id == charge_id)
        if community_id:
            query = query.where(charges.c.community_id == community_id)
        if for_update:
            # Billing's own calls and the provider's webhooks change a charge concurrently.
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        refunded = await RefundRepository(self.session).total(charge_id, [RefundState.SUCCEEDED])
        return _charge(row, refunded)

    async def newest_first(
        self, community_id: str, user_id: str, after: Position | None, limit: int
    ) -> list[Charge]:
        rows = list(
            await self.session.execute(_newest_first(charges, community_id, user_id, after, limit))
        )
        totals = await RefundRepository(self.session).totals([row.id for row in rows])
        return [_charge(row, totals.get(row.id, 0)) for row in rows]


class InvoiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def next_numbers(self, community_ids: Collection[str]) -> dict[str, int]:
        """Each community's next invoice number, a read per community on the unique key's
        index. On PostgreSQL a group first takes each community's numbering lock (held to
        its commit, taken in one order so two groups cannot wait on each other): a
        replica's group that numbers the same community waits and reads the numbers the
        first committed, instead of failing on the unique key and sending each of its
        checkouts again alone. SQLite runs one writer at a time already."""
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        found: dict[str, int] = {}
        for community_id in sorted(community_ids):
            if postgresql:
                await self.session.execute(_NUMBERING_LOCK, {"key": f"invoices:{community_id}"})
            highest = await self.session.scalar(_HIGHEST_NUMBER, {"community_id": community_id})
            found[community_id] = int(highest or 0) + 1
        return found

    async def add_many(self, added: Sequence[Invoice]) -> None:
        if added:
            await self.session.execute(_INSERT_INVOICES, [_invoice_values(i) for i in added])

    async def of_charge(self, charge_id: str) -> Invoice | None:
        row = (
            await self.session.execute(select(invoices).where(invoices.c.charge_id == charge_id))
        ).first()
        return _invoice(row) if row else None

    async def newest_first(
        self, community_id: str, user_id: str, after: Position | None, limit: int
    ) -> list[Invoice]:
        rows = await self.session.execute(
            _newest_first(invoices, community_id, user_id, after, limit)
        )
        return [_invoice(row) for row in rows]


class RefundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, refund: Refund) -> None:
        await self.session.execute(refunds.insert().values(**_refund_values(refund)))

    async def save(self, refund: Refund) -> None:
        await self.session.execute(
            update(refunds).where(refunds.c.id == refund.id).values(**_refund_values(refund))
        )

    async def get(self, refund_id: str, *, for_update: bool = False) -> Refund | None:
        query = select(refunds).where(refunds.c.id == refund_id)
        row = (await self.session.execute(query.with_for_update() if for_update else query)).first()
        return _refund(row) if row else None

    async def total(self, charge_id: str, states: Sequence[RefundState]) -> int:
        found = await self.session.scalar(
            select(func.sum(refunds.c.amount_minor)).where(
                refunds.c.charge_id == charge_id, refunds.c.state.in_([int(s) for s in states])
            )
        )
        return int(found or 0)

    async def totals(self, charge_ids: Sequence[str]) -> dict[str, int]:
        if not charge_ids:
            return {}
        rows = await self.session.execute(
            select(refunds.c.charge_id, func.sum(refunds.c.amount_minor))
            .where(
                refunds.c.charge_id.in_(list(charge_ids)),
                refunds.c.state == int(RefundState.SUCCEEDED),
            )
            .group_by(refunds.c.charge_id)
        )
        return {row[0]: int(row[1]) for row in rows}

    async def newest_first(
        self, community_id: str, user_id: str, after: Position | None, limit: int
    ) -> list[Refund]:
        rows = await self.session.execute(
            _newest_first(refunds, community_id, user_id, after, limit)
        )
        return [_refund(row) for row in rows]


def _charge_values(charge: Charge) -> dict[str, Any]:
    return {
        "id": charge.id,
        "community_id": charge.community_id,
        "user_id": charge.user_id,
        "currency": charge.currency,
        "amount_minor": charge.amount_minor,
        "state": int(charge.state),
        "product_ids": list(charge.product_ids),
        "payment_method": charge.payment_method,
        "provider_payment_id": charge.provider_payment_id,
        "next_action_url": charge.next_action_url,
        "failure_reason": charge.failure_reason,
        "created_at": charge.created_at,
        "updated_at": charge.updated_at,
        "version": charge.version,
    }


def _invoice_values(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "community_id": invoice.community_id,
        "charge_id": invoice.charge_id,
        "user_id": invoice.user_id,
        "number": invoice.number,
        "currency": invoice.currency,
        "subtotal_minor": invoice.subtotal_minor,
        "tax_minor": invoice.tax_minor,
        "total_minor": invoice.total_minor,
        "lines": [line.to_json() for line in invoice.lines],
        "bill_to": invoice.bill_to,
        "created_at": invoice.created_at,
    }


def _charge(row: Row[Any], refunded: int) -> Charge:
    return Charge(
        id=row.id,
        community_id=row.community_id,
        user_id=row.user_id,
        currency=row.currency,
        amount_minor=int(row.amount_minor),
        product_ids=tuple(row.product_ids),
        payment_method=row.payment_method,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        state=ChargeState(row.state),
        provider_payment_id=row.provider_payment_id,
        next_action_url=row.next_action_url,
        failure_reason=row.failure_reason,
        version=int(row.version),
        refunded_minor=refunded,
    )


def _invoice(row: Row[Any]) -> Invoice:
    return Invoice(
        id=row.id,
        community_id=row.community_id,
        charge_id=row.charge_id,
        user_id=row.user_id,
        number=int(row.number),
        currency=row.currency,
        lines=tuple(
            InvoiceLine(
                line["description"],
                line["product_id"],
                line["price_id"],
                int(line["amount_minor"]),
                line["kind"],
            )
            for line in row.lines
        ),
        subtotal_minor=int(row.subtotal_minor),
        tax_minor=int(row.tax_minor),
        bill_to=row.bill_to,
        created_at=utc(row.created_at),
    )


def _refund_values(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "community_id": refund.community_id,
        "charge_id": refund.charge_id,
        "user_id": refund.user_id,
        "currency": refund.currency,
        "amount_minor": refund.amount_minor,
        "state": int(refund.state),
        "reason": refund.reason,
        "by_user_id": refund.by_user_id,
        "provider_refund_id": refund.provider_refund_id,
        "created_at": refund.created_at,
        "updated_at": refund.updated_at,
    }


def _refund(row: Row[Any]) -> Refund:
    return Refund(
        id=row.id,
        community_id=row.community_id,
        charge_id=row.charge_id,
        user_id=row.user_id,
        currency=row.currency,
        amount_minor=int(row.amount_minor),
        by_user_id=row.by_user_id,
        reason=row.reason,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        state=RefundState(row.state),
        provider_refund_id=row.provider_refund_id,
    )
