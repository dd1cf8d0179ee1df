"""Checkouts, charges, invoices and refunds: rules only, no I/O.

A checkout is one charge for one or more products of a community, in one currency, with
one invoice. The provider decides whether it is paid; its events move the charge from
PENDING (or REQUIRES_ACTION, while the payer authenticates) to SUCCEEDED or FAILED, which
are final: a late or repeated event about a final charge changes nothing, so events may
arrive in any order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum
from typing import Any

from services.billing.catalog.currencies import display
from services.billing.catalog.domain import Product
from services.kit.errors import FailedPrecondition, InvalidArgument

# Largest amount a charge may total: far below 2**63, so sums of many charges stay exact.
MAX_TOTAL_MINOR = 10**15


class ChargeState(IntEnum):
    PENDING = 1
    REQUIRES_ACTION = 2
    SUCCEEDED = 3
    FAILED = 4


FINAL = frozenset({ChargeState.SUCCEEDED, ChargeState.FAILED})


class RefundState(IntEnum):
    PENDING = 1
    SUCCEEDED = 2
    FAILED = 3


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    product_id: str
    price_id: str
    amount_minor: int
    kind: str = "item"  # or "tax"

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "product_id": self.product_id,
            "price_id": self.price_id,
            "amount_minor": self.amount_minor,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Invoice:
    id: str
    community_id: str
    charge_id: str
    user_id: str
    number: int
    currency: str
    lines: tuple[InvoiceLine, ...]
    subtotal_minor: int
    tax_minor: int
    bill_to: str
    created_at: datetime

    @property
    def total_minor(self) -> int:
        return self.subtotal_minor + self.tax_minor

    @property
    def total_display(self) -> str:
        return display(self.total_minor, self.currency)


@dataclass(frozen=True)
class Charge:
    id: str
    community_id: str
    user_id: str
    currency: str
    amount_minor: int
    product_ids: tuple[str, ...]
    payment_method: str
    created_at: datetime
    updated_at: datetime
    state: ChargeState = ChargeState.PENDING
    provider_payment_id: str = ""
    next_action_url: str = ""
    failure_reason: str = ""
    version: int = 1
    refunded_minor: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Refund:
    id: str
    community_id: str
    charge_id: str
    user_id: str
    currency: str
    amount_minor: int
    by_user_id: str
    reason: str
    created_at: datetime
    updated_at: datetime
    state: RefundState = RefundState.PENDING
    provider_refund_id: str = ""


def tax_for(community_id: str, currency: str, lines: Sequence[InvoiceLine]) -> int:
    """The tax hook: what tax a checkout owes on its lines, in the minor unit. Zero today.

    A tax engine plugs in here (by the community's and the buyer's jurisdiction); its
    amount becomes a "tax" line of the invoice and a credit of `tax_payable` in the ledger,
    so nothing else changes when it does."""
    return 0


def checkout(
    community_id: str,
    user_id: str,
    products: Sequence[Product],
    payment_method: str,
    bill_to: str,
    number: int,
    now: datetime,
) -> tuple[Charge, Invoice]:
    """The charge and invoice for `products`, which the caller found on sale in the
    community. One invoice holds one currency; a free checkout needs no payment."""
    currency = products[0].price.currency
    for index, product in enumerate(products):
        if product.price.currency != currency:
            raise InvalidArgument.field(
                f"product_ids[{index}]",
                f"costs in {product.price.currency} and product_ids[0] in {currency}: "
                "one invoice holds one currency; check them out separately",
            )
    lines = [
        InvoiceLine(product.name, product.id, product.price_id, product.price.amount_minor)
        for product in products
    ]
    subtotal = sum(line.amount_minor for line in lines)
    tax = tax_for(community_id, currency, lines)
    if subtotal + tax > MAX_TOTAL_MINOR:
        raise InvalidArgument.field("product_ids", "the total is larger than one charge may be")
    if subtotal + tax == 0:
        raise FailedPrecondition(
            "these products are free: nothing to pay; an admin grants free access instead"
        )
    if tax:
        lines.append(InvoiceLine("Tax", "", "", tax, kind="tax"))
    charge_id = str(uuid.uuid4())
    charge = Charge(
        id=charge_id,
        community_id=community_id,
        user_id=user_id,
        currency=currency,
        amount_minor=subtotal + tax,
        product_ids=tuple(product.id for product in products),
        payment_method=payment_method,
        created_at=now,
        updated_at=now,
    )
    invoice = Invoice(
        id=str(uuid.uuid4()),
        community_id=community_id,
        charge_id=charge_id,
        user_id=user_id,
        number=number,
        currency=currency,
        lines=tuple(lines),
        subtotal_minor=subtotal,
        tax_minor=tax,
        bill_to=bill_to.strip(),
        created_at=now,
    )
    return charge, invoice


def moved(charge: Charge, state: ChargeState, now: datetime, **changes: Any) -> Charge | None:
    """The charge in `state`, or None when the event is stale: a final charge stays as it
    is, and REQUIRES_ACTION does not come after it was left."""
    if charge.state in FINAL or charge.state == state:
        return None
    return replace(charge, state=state, updated_at=now, version=charge.version + 1, **changes)


def refundable(charge: Charge, refunded_or_pending: int) -> int:
    """What may still be paid back: the charge less refunds succeeded or under way."""
    if charge.state is not ChargeState.SUCCEEDED:
        raise FailedPrecondition(
            f"charge {charge.id} is {charge.state.name.lower()}: only a paid charge is refunded"
        )
    return charge.amount_minor - refunded_or_pending


def new_refund(
    charge: Charge, amount_minor: int, left: int, by: str, reason: str, now: datetime
) -> Refund:
    if amount_minor < 0:
        raise InvalidArgument.field("amount_minor", "must be zero (all that is left) or more")
    amount = amount_minor or left
    if left <= 0:
        raise FailedPrecondition(f"charge {charge.id} is paid back in full already")
    if amount > left:
        raise InvalidArgument.field(
            "amount_minor",
            f"{amount} is more than the {left} {charge.currency} of charge {charge.id} "
            "not yet paid back",
        )
    return Refund(
        id=str(uuid.uuid4()),
        community_id=charge.community_id,
        charge_id=charge.id,
        user_id=charge.user_id,
        currency=charge.currency,
        amount_minor=amount,
        by_user_id=by,
        reason=reason.strip(),
        created_at=now,
        updated_at=now,
    )


def replace_state(refund: Refund, state: RefundState, now: datetime) -> Refund:
    return replace(refund, state=state, updated_at=now)


def refund_submitted(refund: Refund, provider_refund_id: str) -> Refund:
    return replace(refund, provider_refund_id=provider_refund_id)


def refund_refused(refund: Refund, why: str, now: datetime) -> Refund:
    """The provider refused to pay it back: failed, with the provider's words kept."""
    reason = f"{refund.reason} (provider: {why})" if refund.reason else f"provider: {why}"
    return replace(refund, state=RefundState.FAILED, reason=reason[:500], updated_at=now)
