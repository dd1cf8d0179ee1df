"""What views hold about a member, for ExportMyData and EraseMyData (and MemberErased):
the posts they read and on which days. Erasure removes the rows (analytics keeps its own
counts from the events)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import post_views
from services.kit.database import utc


async def export_views(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(post_views)
        .where(post_views.c.community_id == community_id, post_views.c.user_id == user_id)
        .order_by(post_views.c.viewed_at, post_views.c.post_id)
    )
    return [
        {"post_id": row.post_id, "local_date": row.local_date, "view_time": utc(row.viewed_at)}
        for row in rows
    ]


async def delete_views(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        delete(post_views).where(
            post_views.c.community_id == community_id, post_views.c.user_id == user_id
        )
    )


EXPORTS = {"post_views": export_views}
ERASERS = (delete_views,)
