"""Subscriptions and the charges that pay for them, in the billing database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.catalog.domain import BillingPeriod
from services.billing.store.tables import (
    coupon_members,
    coupons,
    subscription_charges,
    subscriptions,
)
from services.billing.subscriptions.coupons import Coupon, Duration
from services.billing.subscriptions.domain import State, Subscription
from services.kit.database import utc
from services.kit.paging import Position
from services.kit.versioned import save_versioned


@dataclass(frozen=True)
class Payment:
    """What a charge pays for a subscription."""

    charge_id: str
    subscription_id: str
    purpose: str  # "start", "renewal" or "proration"
    attempt: int
    product_id: str
    created_at: datetime


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, sub: Subscription) -> None:
        """Insert a new one, or replace the stored one a version older (StaleWrite when it
        changed meanwhile: the transaction runs again)."""
        await save_versioned(self.session, subscriptions, [_values(sub)], ["id"])

    async def get(
        self, subscription_id: str, community_id: str = "", *, for_update: bool = False
    ) -> Subscription | None:
        query = select(subscriptions).where(subscriptions.c.id == subscription_id)
        if community_id:
            query = query.where(subscriptions.c.community_id == community_id)
        if for_update:
            # Calls, webhooks and the scheduler change a subscription concurrently.
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _subscription(row) if row else None

    async def live(self, community_id: str, user_id: str, product_id: str) -> Subscription | None:
        key = f"{community_id}/{user_id}/{product_id}"
        row = (
            await self.session.execute(select(subscriptions).where(subscriptions.c.live_key == key))
        ).first()
        return _subscription(row) if row else None

    async def newest_first(
        self, community_id: str, user_id: str, after: Position | None, limit: int
    ) -> list[Subscription]:
        table = subscriptions.c
        query = select(subscriptions).where(table.community_id == community_id)
        if user_id:
            query = query.where(table.user_id == user_id)
        if after is not None:
            created, item_id = after
            query = query.where(
                or_(
                    table.created_at < created,
                    and_(table.created_at == created, table.id < item_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(table.created_at.desc(), table.id.desc()).limit(limit)
        )
        return [_subscription(row) for row in rows]


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, payment: Payment) -> None:
        await self.session.execute(
            subscription_charges.insert().values(
                charge_id=payment.charge_id,
                subscription_id=payment.subscription_id,
                purpose=payment.purpose,
                attempt=payment.attempt,
                product_id=payment.product_id,
                created_at=payment.created_at,
            )
        )

    async def of_charge(self, charge_id: str) -> Payment | None:
        row = (
            await self.session.execute(
                select(subscription_charges).where(subscription_charges.c.charge_id == charge_id)
            )
        ).first()
        if row is None:
            return None
        return Payment(
            charge_id=row.charge_id,
            subscription_id=row.subscription_id,
            purpose=row.purpose,
            attempt=int(row.attempt),
            product_id=row.product_id,
            created_at=utc(row.created_at),
        )


class CouponRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, coupon: Coupon, members: Sequence[str]) -> None:
        """The coupon, and the segment's members who may use it."""
        await self.session.execute(coupons.insert().values(**_coupon_values(coupon)))
        if members:
            await self.session.execute(
                coupon_members.insert(),
                [
                    {"coupon_id": coupon.id, "user_id": user, "community_id": coupon.community_id}
                    for user in sorted(set(members))
                ],
            )

    async def by_code(self, community_id: str, code: str) -> Coupon | None:
        row = (
            await self.session.execute(
                select(coupons).where(
                    coupons.c.community_id == community_id, coupons.c.code == code
                )
            )
        ).first()
        return _coupon(row) if row else None

    async def eligible(self, coupon: Coupon, user_id: str) -> bool:
        if not coupon.segment_id:
            return True
        found = await self.session.scalar(
            select(coupon_members.c.user_id).where(
                coupon_members.c.coupon_id == coupon.id, coupon_members.c.user_id == user_id
            )
        )
        return found is not None

    async def newest_first(
        self, community_id: str, after: Position | None, limit: int
    ) -> list[Coupon]:
        table = coupons.c
        query = select(coupons).where(table.community_id == community_id)
        if after is not None:
            created, item_id = after
            query = query.where(
                or_(
                    table.created_at < created,
                    and_(table.created_at == created, table.id < item_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(table.created_at.desc(), table.id.desc()).limit(limit)
        )
        return [_coupon(row) for row in rows]


def _coupon_values(coupon: Coupon) -> dict[str, Any]:
    return {
        "id": coupon.id,
        "community_id": coupon.community_id,
        "code": coupon.code,
        "percent_off": coupon.percent_off,
        "currency": coupon.currency,
        "amount_off_minor": coupon.amount_off_minor,
        "duration": int(coupon.duration),
        "duration_periods": coupon.duration_periods,
        "expires_at": coupon.expires_at,
        "segment_id": coupon.segment_id,
        "eligible_members": coupon.eligible_members,
        "created_by": coupon.created_by,
        "created_at": coupon.created_at,
    }


def _coupon(row: Row[Any]) -> Coupon:
    return Coupon(
        id=row.id,
        community_id=row.community_id,
        code=row.code,
        percent_off=int(row.percent_off),
        currency=row.currency,
        amount_off_minor=int(row.amount_off_minor),
        duration=Duration(row.duration),
        duration_periods=int(row.duration_periods),
        expires_at=_maybe(row.expires_at),
        segment_id=row.segment_id,
        eligible_members=int(row.eligible_members),
        created_by=row.created_by,
        created_at=utc(row.created_at),
    )


def _values(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "community_id": sub.community_id,
        "user_id": sub.user_id,
        "product_id": sub.product_id,
        "price_id": sub.price_id,
        "currency": sub.currency,
        "amount_minor": sub.amount_minor,
        "billing_period": int(sub.billing_period),
        "state": int(sub.state),
        "trialing": int(sub.trialing),
        "period_start": sub.period_start,
        "period_end": sub.period_end,
        "failed_attempts": sub.failed_attempts,
        "next_attempt_at": sub.next_attempt_at,
        "credit_minor": sub.credit_minor,
        "pending_product_id": sub.pending_product_id,
        "latest_charge_id": sub.latest_charge_id,
        "entitlement_id": sub.entitlement_id,
        "payment_method": sub.payment_method,
        "mrr_minor": sub.mrr_minor,
        "churned": int(sub.churned),
        "coupon_id": sub.coupon_id,
        "percent_off": sub.percent_off,
        "amount_off_minor": sub.amount_off_minor,
        "discount_periods_left": sub.discount_periods_left,
        "live_key": sub.live_key,
        "created_at": sub.created_at,
        "updated_at": sub.updated_at,
        "version": sub.version,
    }


def _maybe(moment: datetime | None) -> datetime | None:
    return utc(moment) if moment is not None else None


def _subscription(row: Row[Any]) -> Subscription:
    return Subscription(
        id=row.id,
        community_id=row.community_id,
        user_id=row.user_id,
        product_id=row.product_id,
        price_id=row.price_id,
        currency=row.currency,
        amount_minor=int(row.amount_minor),
        billing_period=BillingPeriod(row.billing_period),
        state=State(row.state),
        payment_method=row.payment_method,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        trialing=bool(row.trialing),
        period_start=_maybe(row.period_start),
        period_end=_maybe(row.period_end),
        failed_attempts=int(row.failed_attempts),
        next_attempt_at=_maybe(row.next_attempt_at),
        credit_minor=int(row.credit_minor),
        pending_product_id=row.pending_product_id,
        latest_charge_id=row.latest_charge_id,
        entitlement_id=row.entitlement_id,
        mrr_minor=int(row.mrr_minor),
        churned=bool(row.churned),
        coupon_id=row.coupon_id,
        percent_off=int(row.percent_off),
        amount_off_minor=int(row.amount_off_minor),
        discount_periods_left=int(row.discount_periods_left),
        version=int(row.version),
    )
