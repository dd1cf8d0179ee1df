"""A community's catalogue of products and their prices: rules only, no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from services.kit.errors import FailedPrecondition


class ProductKind(IntEnum):
    MEMBERSHIP_PLAN = 1
    PAID_COURSE = 2
    EVENT_TICKET = 3
    SPONSORSHIP = 4


class BillingPeriod(IntEnum):
    ONE_OFF = 1
    MONTHLY = 2
    YEARLY = 3


# A trial delays the first charge of a subscription; a one-off purchase has none to delay.
RECURRING = frozenset({BillingPeriod.MONTHLY, BillingPeriod.YEARLY})

NAME_MAX = 120
DESCRIPTION_MAX = 5_000
DISCLOSURE_MAX = 1_000
TRIAL_DAYS_MAX = 365
# What UpdateProduct may change, by field-mask path.
UPDATABLE = ("name", "description", "disclosure", "price")

CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class Money:
    """An amount in the minor unit of its currency: integers, so no rounding ever creeps in."""

    currency: str
    amount_minor: int


@dataclass(frozen=True)
class Product:
    id: str
    community_id: str
    kind: ProductKind
    name: str
    price: Money
    billing_period: BillingPeriod = BillingPeriod.ONE_OFF
    description: str = ""
    trial_days: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1
    disclosure: str = ""
    price_id: str = ""
    archived_at: datetime | None = None

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def on_sale(self) -> bool:
        return self.archived_at is None


def new_product(
    *,
    community_id: str,
    kind: ProductKind,
    name: str,
    price: Money,
    description: str = "",
    billing_period: BillingPeriod = BillingPeriod.ONE_OFF,
    trial_days: int = 0,
    disclosure: str = "",
) -> Product:
    return Product(
        id=str(uuid.uuid4()),
        community_id=community_id,
        kind=kind,
        name=name.strip(),
        price=price,
        billing_period=billing_period,
        description=description.strip(),
        trial_days=trial_days,
        disclosure=disclosure.strip(),
        price_id=str(uuid.uuid4()),
    )


def period_or_default(value: int) -> BillingPeriod:
    """The billing period a client asked for; none (0) means a one-off purchase."""
    return BillingPeriod(value) if value else BillingPeriod.ONE_OFF


def allows_trial(period: BillingPeriod) -> bool:
    return period in RECURRING


def needs_disclosure(kind: ProductKind | int) -> bool:
    """A sponsorship is paid for by a brand: members are told who and why, always."""
    return kind == ProductKind.SPONSORSHIP


def check_etag(product: Product, etag: str) -> None:
    if etag and etag != product.etag:
        raise FailedPrecondition(
            f"product {product.id} changed since you read it (etag {etag}, now "
            f"{product.etag}); read it again and reapply your change"
        )


def update(product: Product, changes: Mapping[str, Any], etag: str) -> Product:
    """The product with `changes` (by field-mask path) applied. A new price gets a new price
    id: the old price stays as it was, for the charges made at it."""
    check_etag(product, etag)
    if not product.on_sale:
        raise FailedPrecondition(f"product {product.id} is archived; it cannot be changed")
    price = changes.get("price", product.price)
    return replace(
        product,
        name=str(changes.get("name", product.name)).strip(),
        description=str(changes.get("description", product.description)).strip(),
        disclosure=str(changes.get("disclosure", product.disclosure)).strip(),
        price=price,
        price_id=str(uuid.uuid4()) if price != product.price else product.price_id,
        version=product.version + 1,
    )


def archive(product: Product, etag: str, now: datetime) -> Product:
    check_etag(product, etag)
    if not product.on_sale:
        return product
    return replace(product, archived_at=now, version=product.version + 1)
