"""Topics in the content database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import topics
from services.content.topics.domain import Topic
from services.kit.database import utc
from services.kit.paging import Position


class TopicRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, topic: Topic) -> None:
        await self.session.execute(topics.insert().values(id=topic.id, **_values(topic)))

    async def save(self, topic: Topic) -> None:
        await self.session.execute(
            update(topics).where(topics.c.id == topic.id).values(**_values(topic))
        )

    async def get(
        self, community_id: str, topic_id: str, *, for_update: bool = False
    ) -> Topic | None:
        query = select(topics).where(topics.c.community_id == community_id, topics.c.id == topic_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _topic(row) if row else None

    async def name_taken(self, community_id: str, key: str, other_than: str = "") -> bool:
        found = await self.session.scalar(
            select(topics.c.id).where(
                topics.c.community_id == community_id,
                topics.c.name_key == key,
                topics.c.id != other_than,
            )
        )
        return found is not None

    async def oldest_first(
        self, community_id: str, after: Position | None, limit: int
    ) -> list[Topic]:
        query = select(topics).where(topics.c.community_id == community_id)
        if after is not None:
            created, topic_id = after
            query = query.where(
                or_(
                    topics.c.created_at > created,
                    and_(topics.c.created_at == created, topics.c.id > topic_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(topics.c.created_at, topics.c.id).limit(limit)
        )
        return [_topic(row) for row in rows]


def _values(topic: Topic) -> dict[str, Any]:
    return {
        "community_id": topic.community_id,
        "name": topic.name,
        "name_key": topic.name_key,
        "description": topic.description,
        "created_by": topic.created_by,
        "created_at": topic.created_at,
        "version": topic.version,
    }


def _topic(row: Row[Any]) -> Topic:
    return Topic(
        id=row.id,
        community_id=row.community_id,
        name=row.name,
        description=row.description,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        version=int(row.version),
    )
