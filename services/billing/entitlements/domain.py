"""Entitlements: who may use which product of a community, from when until when. Rules
only, no I/O.

One engine (services/billing/entitlements/engine.py) makes them from what was paid and what
admins grant; payment and access stay apart (a refund revokes access, access never moves
money)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import IntEnum

from services.billing.catalog.domain import BillingPeriod
from services.kit.errors import FailedPrecondition


class Source(IntEnum):
    """EntitlementSource of billing_events.proto."""

    PURCHASE = 1
    SUBSCRIPTION = 2
    ADMIN_GRANT = 3


# A paid period: a month is 31 days and a year 366, so no member gets less than they paid
# for whatever the calendar; renewals (not built yet) would move the end on from there.
PERIODS = {BillingPeriod.MONTHLY: timedelta(days=31), BillingPeriod.YEARLY: timedelta(days=366)}


@dataclass(frozen=True)
class Entitlement:
    id: str
    community_id: str
    user_id: str
    product_id: str
    source: Source
    start_at: datetime
    end_at: datetime | None
    created_at: datetime
    charge_id: str = ""
    granted_by: str = ""
    revoked_at: datetime | None = None
    version: int = 1

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def purchased(
    community_id: str,
    user_id: str,
    product_id: str,
    period: BillingPeriod,
    charge_id: str,
    now: datetime,
) -> Entitlement:
    """What a paid product gives: a one-off purchase for good, a plan for its period."""
    length = PERIODS.get(period)
    return Entitlement(
        id=str(uuid.uuid4()),
        community_id=community_id,
        user_id=user_id,
        product_id=product_id,
        source=Source.SUBSCRIPTION if length else Source.PURCHASE,
        start_at=now,
        end_at=now + length if length else None,
        created_at=now,
        charge_id=charge_id,
    )


def granted(
    community_id: str,
    user_id: str,
    product_id: str,
    by: str,
    end_at: datetime | None,
    now: datetime,
) -> Entitlement:
    if end_at is not None and end_at <= now:
        raise FailedPrecondition("end_time must be in the future: access would end at once")
    return Entitlement(
        id=str(uuid.uuid4()),
        community_id=community_id,
        user_id=user_id,
        product_id=product_id,
        source=Source.ADMIN_GRANT,
        start_at=now,
        end_at=end_at,
        created_at=now,
        granted_by=by,
    )


def revoke(entitlement: Entitlement, now: datetime) -> Entitlement:
    """Access ends now; revoking a revoked entitlement changes nothing."""
    if entitlement.revoked:
        return entitlement
    end = now if entitlement.end_at is None or entitlement.end_at > now else entitlement.end_at
    return replace(entitlement, revoked_at=now, end_at=end, version=entitlement.version + 1)
