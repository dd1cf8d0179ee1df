"""The ledger in the billing database: transactions are appended, never changed (the
tables' triggers refuse UPDATE and DELETE); balances are sums of entries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.ledger.domain import Transaction
from services.billing.store.tables import ledger_entries, ledger_transactions


class Ledger:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, posted: Transaction) -> None:
        await self.session.execute(
            ledger_transactions.insert().values(
                id=posted.id,
                community_id=posted.community_id,
                kind=str(posted.kind),
                charge_id=posted.charge_id,
                refund_id=posted.refund_id,
                created_at=posted.created_at,
            )
        )
        await self.session.execute(
            ledger_entries.insert(),
            [
                {
                    "transaction_id": posted.id,
                    "community_id": posted.community_id,
                    "account": str(entry.account),
                    "currency": entry.currency,
                    "amount_minor": entry.amount_minor,
                    "created_at": posted.created_at,
                }
                for entry in posted.entries
            ],
        )

    async def balances(self, community_id: str) -> list[tuple[str, str, int]]:
        """(account, currency, debits minus credits) of each account with entries."""
        rows = await self.session.execute(
            select(
                ledger_entries.c.account,
                ledger_entries.c.currency,
                func.sum(ledger_entries.c.amount_minor),
            )
            .where(ledger_entries.c.community_id == community_id)
            .group_by(ledger_entries.c.account, ledger_entries.c.currency)
            .order_by(ledger_entries.c.currency, ledger_entries.c.account)
        )
        return [(row[0], row[1], int(row[2])) for row in rows]

    async def entries_after(self, community_id: str, after: int, limit: int) -> list[Any]:
        rows = await self.session.execute(
            select(
                ledger_entries,
                ledger_transactions.c.kind,
                ledger_transactions.c.charge_id,
                ledger_transactions.c.refund_id,
            )
            .join(
                ledger_transactions,
                ledger_transactions.c.id == ledger_entries.c.transaction_id,
            )
            .where(ledger_entries.c.community_id == community_id, ledger_entries.c.id > after)
            .order_by(ledger_entries.c.id)
            .limit(limit)
        )
        return list(rows)
