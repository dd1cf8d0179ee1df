"""What billing holds about a member in entitlements, for ExportMyData and EraseMyData (and
MemberErased). Erasure removes them: an entitlement is about a person and nothing else;
the charges that paid for them keep their amounts (services/billing/checkout/data.py), and
content and events drop their own copies on MemberErased."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.entitlements.domain import Source
from services.billing.store.tables import entitlements
from services.kit.database import utc


async def export_entitlements(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(entitlements)
        .where(entitlements.c.community_id == community_id, entitlements.c.user_id == user_id)
        .order_by(entitlements.c.created_at, entitlements.c.id)
    )
    return [
        {
            "id": row.id,
            "product_id": row.product_id,
            "source": Source(row.source).name.lower(),
            "start_time": utc(row.start_at),
            "end_time": utc(row.end_at) if row.end_at else None,
            "revoke_time": utc(row.revoked_at) if row.revoked_at else None,
        }
        for row in rows
    ]


async def remove_entitlements(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        delete(entitlements).where(
            entitlements.c.community_id == community_id, entitlements.c.user_id == user_id
        )
    )


EXPORTS = {"entitlements": export_entitlements}
ERASERS = (remove_entitlements,)
