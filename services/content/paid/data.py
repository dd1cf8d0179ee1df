"""What paid content holds about a member, for ExportMyData and EraseMyData (and
MemberErased): their entitlements as billing published them. Erasure removes them here
(billing keeps its own record of what was bought)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import entitlements
from services.kit.database import utc


async def export_entitlements(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(entitlements)
        .where(entitlements.c.community_id == community_id, entitlements.c.user_id == user_id)
        .order_by(entitlements.c.entitlement_id)
    )
    return [
        {
            "entitlement_id": row.entitlement_id,
            "product_id": row.product_id,
            "start_time": utc(row.start_at) if row.start_at else None,
            "end_time": utc(row.end_at) if row.end_at else None,
        }
        for row in rows
    ]


async def delete_entitlements(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        delete(entitlements).where(
            entitlements.c.community_id == community_id, entitlements.c.user_id == user_id
        )
    )


EXPORTS = {"entitlements": export_entitlements}
ERASERS = (delete_entitlements,)
