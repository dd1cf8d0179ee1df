"""Billing's rules without I/O: money shown with each currency's decimals, the ledger's
balance and floors, corrections as mirrors, and Stripe's webhook signature scheme."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.billing.catalog.currencies import EXPONENTS, display
from services.billing.ledger import domain as ledger
from services.billing.payments.signatures import BadSignature, sign, verify

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (499, "EUR", "4.99 EUR"),
        (5, "USD", "0.05 USD"),
        (500, "JPY", "500 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (-250, "GBP", "-2.50 GBP"),
    ],
)
def test_amounts_are_shown_with_the_currencys_decimals(
    amount: int, currency: str, shown: str
) -> None:
    assert display(amount, currency) == shown


def test_zero_decimal_currencies_have_no_minor_unit() -> None:
    assert {code for code, exponent in EXPONENTS.items() if exponent == 0} >= {"JPY", "KRW", "VND"}


def test_a_paid_charge_balances_and_a_refund_counts_against_cash() -> None:
    charge = ledger.charge_paid("c", "ch", "EUR", 4000, 0, NOW)
    assert sum(entry.amount_minor for entry in charge.entries) == 0
    refund = ledger.refund_paid("c", "ch", "re", "EUR", 1500, NOW)
    cash = sum(
        e.amount_minor
        for t in (charge, refund)
        for e in t.entries
        if e.account is ledger.Account.PROVIDER_CASH
    )
    assert cash == 2500
    assert not ledger.below_floor("provider_cash", cash)
    assert ledger.below_floor("provider_cash", -1)
    assert ledger.below_floor("revenue", 1)


def test_an_unbalanced_transaction_is_never_built() -> None:
    with pytest.raises(ledger.Unbalanced, match="EUR sums to 1"):
        ledger.transaction(
            "c",
            ledger.TransactionKind.CORRECTION,
            [ledger.Entry(ledger.Account.REVENUE, "EUR", 1)],
            NOW,
        )


def test_a_correction_mirrors_the_transaction_it_undoes() -> None:
    original = ledger.charge_paid("c", "ch", "JPY", 3000, 0, NOW)
    undone = ledger.reversal(original, NOW)
    assert undone.kind is ledger.TransactionKind.CORRECTION
    totals: dict[str, int] = {}
    for entry in (*original.entries, *undone.entries):
        totals[entry.account] = totals.get(entry.account, 0) + entry.amount_minor
    assert set(totals.values()) == {0}


def test_a_signature_verifies_only_for_its_payload_secret_and_time() -> None:
    header = sign(b'{"id":"evt_1"}', "whsec_secret", 1_700_000_000)
    assert verify(b'{"id":"evt_1"}', header, "whsec_secret", 1_700_000_010, 300) == 1_700_000_000
    with pytest.raises(BadSignature, match="does not match"):
        verify(b'{"id":"evt_2"}', header, "whsec_secret", 1_700_000_010, 300)
    with pytest.raises(BadSignature, match="does not match"):
        verify(b'{"id":"evt_1"}', header, "whsec_other!", 1_700_000_010, 300)
    with pytest.raises(BadSignature, match="tolerance"):
        verify(b'{"id":"evt_1"}', header, "whsec_secret", 1_700_000_301, 300)
    rotated = header + ",v1=" + "0" * 64
    assert verify(b'{"id":"evt_1"}', rotated, "whsec_secret", 1_700_000_000, 300)
