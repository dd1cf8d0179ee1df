"""What segments hold about a member: the segments they created. The segment is the
community's and stays on erasure; it loses its creator's id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.data_rights import Eraser, Exporter
from services.kit.database import utc
from services.members.store.tables import segments


async def _export_segments_created(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(segments.c.id, segments.c.name, segments.c.created_at)
        .where(segments.c.community_id == community_id)
        .where(segments.c.created_by_user_id == user_id)
        .order_by(segments.c.created_at, segments.c.id)
    )
    return [
        {"segment_id": row.id, "name": row.name, "create_time": utc(row.created_at)} for row in rows
    ]


async def _forget_creator(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(segments)
        .where(segments.c.community_id == community_id)
        .where(segments.c.created_by_user_id == user_id)
        .values(created_by_user_id="")
    )


# The sections this capability adds to a member's export, and what erasure runs here.
EXPORTS: dict[str, Exporter] = {"segments_created": _export_segments_created}
ERASERS: tuple[Eraser, ...] = (_forget_creator,)
