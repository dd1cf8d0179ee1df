"""What billing holds about a member in subscriptions, for ExportMyData and EraseMyData (and
MemberErased). Erasure ends what is still running (no renewal charges a person who is
gone; a paying one leaves MRR as churn, so analytics' figures stay right) and blanks who it
was and how they paid; the amounts stay, as on charges."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.store.tables import coupon_members, scheduled_jobs, subscriptions
from services.billing.subscriptions import domain, events
from services.billing.subscriptions.domain import Change, State
from services.billing.subscriptions.store import SubscriptionRepository
from services.kit.database import utc

ERASED = ""


async def export_subscriptions(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(subscriptions)
        .where(subscriptions.c.community_id == community_id, subscriptions.c.user_id == user_id)
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    )
    return [
        {
            "id": row.id,
            "product_id": row.product_id,
            "state": State(row.state).name.lower(),
            "currency": row.currency,
            "amount_minor": int(row.amount_minor),
            "current_period_end": utc(row.period_end) if row.period_end else None,
            "create_time": utc(row.created_at),
        }
        for row in rows
    ]


async def erase_subscriptions(session: AsyncSession, community_id: str, user_id: str) -> None:
    now = datetime.now(UTC)
    repository = SubscriptionRepository(session)
    found = await repository.newest_first(community_id, user_id, None, 10_000)
    for sub in found:
        change = domain.ended(sub, now) if sub.live else Change(sub, sub)
        erased = replace(change.after, user_id=ERASED, payment_method=ERASED)
        if sub.live:
            await events.changed(session, Change(replace(sub, user_id=ERASED), erased), now)
        else:
            erased = replace(erased, version=sub.version + 1, updated_at=now)
        await repository.save(erased)
        await session.execute(
            delete(scheduled_jobs).where(
                scheduled_jobs.c.kind == domain.RENEW, scheduled_jobs.c.key == sub.id
            )
        )


async def export_coupons(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    """The coupons limited to a segment that the member may use."""
    rows = await session.execute(
        select(coupon_members.c.coupon_id)
        .where(coupon_members.c.community_id == community_id, coupon_members.c.user_id == user_id)
        .order_by(coupon_members.c.coupon_id)
    )
    return [{"coupon_id": row[0]} for row in rows]


async def remove_from_coupons(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        delete(coupon_members).where(
            coupon_members.c.community_id == community_id, coupon_members.c.user_id == user_id
        )
    )


EXPORTS = {"subscriptions": export_subscriptions, "coupons": export_coupons}
ERASERS = (erase_subscriptions, remove_from_coupons)
