"""Recurring themes in the content database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import themes
from services.content.themes.domain import Theme
from services.kit.database import utc
from services.kit.paging import Position
from services.kit.versioned import save_versioned


class ThemeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, theme: Theme) -> None:
        await save_versioned(self.session, themes, [_values(theme)], ["id"])

    async def get(
        self, community_id: str, theme_id: str, *, for_update: bool = False
    ) -> Theme | None:
        query = select(themes).where(themes.c.community_id == community_id, themes.c.id == theme_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _theme(row) if row else None

    async def oldest_first(
        self, community_id: str, after: Position | None, limit: int
    ) -> list[Theme]:
        query = select(themes).where(themes.c.community_id == community_id)
        if after is not None:
            created, theme_id = after
            query = query.where(
                or_(
                    themes.c.created_at > created,
                    and_(themes.c.created_at == created, themes.c.id > theme_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(themes.c.created_at, themes.c.id).limit(limit)
        )
        return [_theme(row) for row in rows]


def _values(theme: Theme) -> dict[str, Any]:
    return {
        "id": theme.id,
        "community_id": theme.community_id,
        "title": theme.title,
        "body": theme.body,
        "kind": theme.kind,
        "topic_id": theme.topic_id,
        "weekday": theme.weekday,
        "local_time": theme.local_time,
        "time_zone": theme.time_zone,
        "author_user_id": theme.author_user_id,
        "active": theme.active,
        "next_at": theme.next_at,
        "next_local_date": theme.next_local_date,
        "published_count": theme.published_count,
        "last_missed_reason": theme.last_missed_reason,
        "created_at": theme.created_at,
        "version": theme.version,
    }


def _theme(row: Row[Any]) -> Theme:
    return Theme(
        id=row.id,
        community_id=row.community_id,
        title=row.title,
        body=row.body,
        kind=int(row.kind),
        topic_id=row.topic_id,
        weekday=int(row.weekday),
        local_time=row.local_time,
        time_zone=row.time_zone,
        author_user_id=row.author_user_id,
        created_at=utc(row.created_at),
        active=bool(row.active),
        next_at=utc(row.next_at) if row.next_at else None,
        next_local_date=row.next_local_date,
        published_count=int(row.published_count),
        last_missed_reason=row.last_missed_reason,
        version=int(row.version),
    )
