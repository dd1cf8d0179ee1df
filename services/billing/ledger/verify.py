"""`billing verify`: every invariant of the ledger, checked against what is stored.

1. Each transaction sums to zero per currency.
2. No account is below its floor (per community and currency).
3. Every succeeded charge has exactly one charge transaction, of its amount; a charge that
   did not succeed has none.
4. Every refund is at most what was paid: the succeeded refunds of a charge add up to no
   more than the charge, each has exactly one refund transaction, of its amount.

Reads only; run by the VerifyLedger RPC (and so the CLI) and by the tests after each flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.ledger.domain import Account, TransactionKind, below_floor
from services.billing.store.tables import charges, ledger_entries, ledger_transactions, refunds
from studyhall.billing.v1 import billing_service_pb2 as pb

SUCCEEDED = pb.CHARGE_STATE_SUCCEEDED
REFUND_SUCCEEDED = pb.REFUND_STATE_SUCCEEDED


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    transactions: int = 0
    charges: int = 0
    refunds: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _scoped(query: Any, column: Any, community_id: str) -> Any:
    return query.where(column == community_id) if community_id else query


async def verify(session: AsyncSession, community_id: str = "") -> Report:
    """Every invariant, in one community or (empty) in all."""
    report = Report()
    entries, transactions = ledger_entries.c, ledger_transactions.c

    report.transactions = int(
        await session.scalar(
            _scoped(
                select(func.count()).select_from(ledger_transactions),
                transactions.community_id,
                community_id,
            )
        )
        or 0
    )
    unbalanced = await session.execute(
        _scoped(
            select(entries.transaction_id, entries.currency, func.sum(entries.amount_minor))
            .group_by(entries.transaction_id, entries.currency)
            .having(func.sum(entries.amount_minor) != 0),
            entries.community_id,
            community_id,
        )
    )
    for transaction_id, currency, total in unbalanced:
        report.problems.append(f"transaction {transaction_id} sums to {total} {currency}, not zero")

    balances = await session.execute(
        _scoped(
            select(
                entries.community_id,
                entries.account,
                entries.currency,
                func.sum(entries.amount_minor),
            ).group_by(entries.community_id, entries.account, entries.currency),
            entries.community_id,
            community_id,
        )
    )
    for community, account, currency, total in balances:
        if below_floor(account, int(total)):
            report.problems.append(
                f"account {account} of community {community} is below its floor: {total} {currency}"
            )

    # What each charge transaction put into provider_cash, by charge.
    posted = {
        (row.charge_id, row.kind): (int(row.n), int(row.amount or 0))
        for row in await session.execute(
            _scoped(
                select(
                    transactions.charge_id,
                    transactions.kind,
                    func.count(func.distinct(transactions.id)).label("n"),
                    func.sum(entries.amount_minor).label("amount"),
                )
                .select_from(
                    ledger_transactions.join(
                        ledger_entries, entries.transaction_id == transactions.id
                    )
                )
                .where(entries.account == str(Account.PROVIDER_CASH))
                .where(transactions.kind.in_([str(TransactionKind.CHARGE)]))
                .group_by(transactions.charge_id, transactions.kind),
                transactions.community_id,
                community_id,
            )
        )
    }
    all_charges = list(
        await session.execute(
            _scoped(
                select(charges.c.id, charges.c.state, charges.c.amount_minor),
                charges.c.community_id,
                community_id,
            )
        )
    )
    report.charges = len(all_charges)
    amounts = {row.id: int(row.amount_minor) for row in all_charges}
    for row in all_charges:
        count, amount = posted.pop((row.id, str(TransactionKind.CHARGE)), (0, 0))
        if row.state == SUCCEEDED and count != 1:
            report.problems.append(
                f"charge {row.id} succeeded with {count} ledger transactions, not one"
            )
        elif row.state == SUCCEEDED and amount != row.amount_minor:
            report.problems.append(
                f"charge {row.id} of {row.amount_minor} is in the ledger as {amount}"
            )
        elif row.state != SUCCEEDED and count:
            report.problems.append(
                f"charge {row.id} did not succeed but has {count} ledger transactions"
            )
    for (charge_id, _kind), (count, _amount) in posted.items():
        report.problems.append(
            f"ledger has {count} charge transactions for unknown charge {charge_id!r}"
        )

    refunded = {
        row.refund_id: (int(row.n), -int(row.amount or 0))
        for row in await session.execute(
            _scoped(
                select(
                    transactions.refund_id,
                    func.count(func.distinct(transactions.id)).label("n"),
                    func.sum(entries.amount_minor).label("amount"),
                )
                .select_from(
                    ledger_transactions.join(
                        ledger_entries, entries.transaction_id == transactions.id
                    )
                )
                .where(entries.account == str(Account.PROVIDER_CASH))
                .where(transactions.kind == str(TransactionKind.REFUND))
                .group_by(transactions.refund_id),
                transactions.community_id,
                community_id,
            )
        )
    }
    all_refunds = list(
        await session.execute(
            _scoped(
                select(refunds.c.id, refunds.c.charge_id, refunds.c.state, refunds.c.amount_minor),
                refunds.c.community_id,
                community_id,
            )
        )
    )
    report.refunds = len(all_refunds)
    paid_back: dict[str, int] = {}
    for row in all_refunds:
        count, amount = refunded.pop(row.id, (0, 0))
        if row.state == REFUND_SUCCEEDED:
            paid_back[row.charge_id] = paid_back.get(row.charge_id, 0) + int(row.amount_minor)
            if count != 1 or amount != row.amount_minor:
                report.problems.append(
                    f"refund {row.id} of {row.amount_minor} succeeded with {count} ledger "
                    f"transactions of {amount}"
                )
        elif count:
            report.problems.append(f"refund {row.id} did not succeed but is in the ledger")
    for refund_id in refunded:
        report.problems.append(f"ledger has a refund transaction for unknown refund {refund_id!r}")
    for charge_id, total in paid_back.items():
        paid = amounts.get(charge_id, 0)
        if total > paid:
            report.problems.append(
                f"charge {charge_id} paid back {total}, more than the {paid} paid"
            )
    return report
