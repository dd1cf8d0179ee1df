"""The double-entry ledger's rules: accounts, the postings of each business event, and the
invariants the ledger always keeps. No I/O.

Every transaction is a set of entries that sums to zero per currency (debits positive,
credits negative). Each community has, per currency:

- `provider_cash`: what the payment provider holds for the community (an asset, debit
  balance, never below zero: a refund cannot pay back money that never came in);
- `revenue`: what members paid (income, credit balance, never above zero);
- `refunds`: what was paid back (contra-revenue, debit balance, never below zero);
- `tax_payable`: tax collected for an authority (zero until a tax hook computes any).

Decision: docs/decisions/0023-an-append-only-double-entry-ledger.md.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Account(StrEnum):
    PROVIDER_CASH = "provider_cash"
    REVENUE = "revenue"
    REFUNDS = "refunds"
    TAX_PAYABLE = "tax_payable"


class TransactionKind(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    CORRECTION = "correction"


# +1: the balance (debits minus credits) must stay zero or above; -1: zero or below.
FLOORS: dict[Account, int] = {
    Account.PROVIDER_CASH: 1,
    Account.REVENUE: -1,
    Account.REFUNDS: 1,
    Account.TAX_PAYABLE: -1,
}


@dataclass(frozen=True)
class Entry:
    account: Account
    currency: str
    amount_minor: int


@dataclass(frozen=True)
class Transaction:
    id: str
    community_id: str
    kind: TransactionKind
    entries: tuple[Entry, ...]
    created_at: datetime
    charge_id: str = ""
    refund_id: str = ""


class Unbalanced(ValueError):
    """A transaction whose entries do not sum to zero in some currency: never written."""


def transaction(
    community_id: str,
    kind: TransactionKind,
    entries: Iterable[Entry],
    now: datetime,
    *,
    charge_id: str = "",
    refund_id: str = "",
) -> Transaction:
    kept = tuple(entry for entry in entries if entry.amount_minor != 0)
    problems = imbalances(kept)
    if problems:
        raise Unbalanced("; ".join(problems))
    return Transaction(
        str(uuid.uuid4()), community_id, kind, kept, now, charge_id=charge_id, refund_id=refund_id
    )


def charge_paid(
    community_id: str, charge_id: str, currency: str, net_minor: int, tax_minor: int, now: datetime
) -> Transaction:
    """A charge the provider confirmed: the provider holds the money, the community earned
    it (and owes the tax, when there is any)."""
    return transaction(
        community_id,
        TransactionKind.CHARGE,
        [
            Entry(Account.PROVIDER_CASH, currency, net_minor + tax_minor),
            Entry(Account.REVENUE, currency, -net_minor),
            Entry(Account.TAX_PAYABLE, currency, -tax_minor),
        ],
        now,
        charge_id=charge_id,
    )


def refund_paid(
    community_id: str, charge_id: str, refund_id: str, currency: str, amount: int, now: datetime
) -> Transaction:
    """A refund the provider confirmed: money leaves the provider's balance; revenue is not
    edited, the refund is counted against it."""
    return transaction(
        community_id,
        TransactionKind.REFUND,
        [
            Entry(Account.REFUNDS, currency, amount),
            Entry(Account.PROVIDER_CASH, currency, -amount),
        ],
        now,
        charge_id=charge_id,
        refund_id=refund_id,
    )


def reversal(original: Transaction, now: datetime) -> Transaction:
    """A correction: the same entries with their signs turned, as a new transaction. The
    ledger is never edited; a mistake is undone by its mirror."""
    return transaction(
        original.community_id,
        TransactionKind.CORRECTION,
        [Entry(e.account, e.currency, -e.amount_minor) for e in original.entries],
        now,
        charge_id=original.charge_id,
        refund_id=original.id,
    )


def imbalances(entries: Sequence[Entry]) -> list[str]:
    """Each currency whose entries do not sum to zero."""
    sums: dict[str, int] = defaultdict(int)
    for entry in entries:
        sums[entry.currency] += entry.amount_minor
    return [
        f"{currency} sums to {total}, not 0" for currency, total in sorted(sums.items()) if total
    ]


def below_floor(account: str, balance: int) -> bool:
    """Whether a balance breaks its account's floor (an unknown account has none)."""
    try:
        sign = FLOORS[Account(account)]
    except ValueError:
        return False
    return balance * sign < 0
