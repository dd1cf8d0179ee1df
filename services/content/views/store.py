"""Views in the content database: a batch inserted at once, repeats ignored by the key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import post_views
from services.kit.database import insert_for


@dataclass(frozen=True)
class View:
    community_id: str
    post_id: str
    user_id: str
    local_date: str
    viewed_at: datetime

    @property
    def key(self) -> tuple[str, str, str]:
        return self.post_id, self.user_id, self.local_date


async def add_new(session: AsyncSession, views: Sequence[View]) -> set[tuple[str, str, str]]:
    """Insert `views`, ignoring those the table holds already; the keys of those inserted."""
    distinct = list({view.key: view for view in views}.values())
    if not distinct:
        return set()
    dialect = session.get_bind().dialect.name
    insert: Any = insert_for(dialect)
    rows = await session.execute(
        insert(post_views)
        .values(
            [
                {
                    "post_id": view.post_id,
                    "user_id": view.user_id,
                    "local_date": view.local_date,
                    "community_id": view.community_id,
                    "viewed_at": view.viewed_at,
                }
                for view in distinct
            ]
        )
        .on_conflict_do_nothing(index_elements=["post_id", "user_id", "local_date"])
        .returning(post_views.c.post_id, post_views.c.user_id, post_views.c.local_date)
    )
    return {(row.post_id, row.user_id, row.local_date) for row in rows}
