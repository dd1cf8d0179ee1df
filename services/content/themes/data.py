"""What recurring themes hold about a member, for ExportMyData and EraseMyData (and
MemberErased): the themes they started. Erasure ends them (no more posts go out as
someone who left no name) and keeps them listed under no author."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import scheduled_jobs, themes
from services.content.themes.domain import PUBLISH_THEME
from services.kit.database import utc


async def export_themes(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(themes)
        .where(themes.c.community_id == community_id, themes.c.author_user_id == user_id)
        .order_by(themes.c.created_at, themes.c.id)
    )
    return [
        {
            "id": row.id,
            "title": row.title,
            "body": row.body,
            "weekday": int(row.weekday),
            "local_time": row.local_time,
            "time_zone": row.time_zone,
            "active": bool(row.active),
            "create_time": utc(row.created_at),
        }
        for row in rows
    ]


async def end_authored_themes(session: AsyncSession, community_id: str, user_id: str) -> None:
    mine = (themes.c.community_id == community_id) & (themes.c.author_user_id == user_id)
    rows = await session.execute(select(themes.c.id, themes.c.next_local_date).where(mine))
    keys = [f"{row.id}/{row.next_local_date}" for row in rows]
    if keys:
        await session.execute(
            delete(scheduled_jobs).where(
                scheduled_jobs.c.kind == PUBLISH_THEME, scheduled_jobs.c.key.in_(keys)
            )
        )
    await session.execute(
        update(themes)
        .where(mine)
        .values(
            author_user_id="",
            active=False,
            next_at=None,
            next_local_date="",
            version=themes.c.version + 1,
        )
    )


EXPORTS = {"themes": export_themes}
ERASERS = (end_authored_themes,)
