"""A community's catalogue of products and their prices: rules only, no I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum


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
TRIAL_DAYS_MAX = 365

CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")

# Active ISO 4217 codes a community is likely to charge in. Amounts are in each currency's
# minor unit as given (yen for JPY, fils for KWD), so no exponent table is needed here.
CURRENCIES = frozenset(
    {
        # Americas
        "USD", "CAD", "MXN", "BRL", "ARS", "CLP", "COP", "PEN", "UYU",
        # Europe
        "EUR", "GBP", "CHF", "SEK", "NOK", "DKK", "ISK", "PLN", "CZK", "HUF", "RON", "RSD",
        "RUB", "UAH", "GEL", "TRY",
        # Asia and the Pacific
        "JPY", "CNY", "HKD", "TWD", "KRW", "SGD", "INR", "PKR", "BDT", "LKR", "NPR", "THB",
        "IDR", "MYR", "PHP", "VND", "KZT", "AUD", "NZD",
        # Middle East and Africa
        "AED", "SAR", "QAR", "KWD", "BHD", "OMR", "JOD", "ILS", "EGP", "MAD", "NGN", "KES",
        "GHS", "ZAR",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Money:
    """An amount in the minor unit of its currency: integers, so no rounding ever creeps in."""

    currency: str
    amount_minor: int


@dataclass
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


def new_product(
    *,
    community_id: str,
    kind: ProductKind,
    name: str,
    price: Money,
    description: str = "",
    billing_period: BillingPeriod = BillingPeriod.ONE_OFF,
    trial_days: int = 0,
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
    )


def period_or_default(value: int) -> BillingPeriod:
    """The billing period a client asked for; none (0) means a one-off purchase."""
    return BillingPeriod(value) if value else BillingPeriod.ONE_OFF


def allows_trial(period: BillingPeriod) -> bool:
    return period in RECURRING
