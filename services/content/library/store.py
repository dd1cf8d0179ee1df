"""The resource library in the content database: resources and their tags, members'
ratings and saves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, exists, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.content.library.domain import Level, Resource, ResourceType
from services.content.store.tables import (
    library_resource_tags,
    library_resources,
    resource_ratings,
    resource_saves,
)
from services.kit.database import insert_for, utc
from services.kit.paging import Position
from services.kit.versioned import save_versioned

table = library_resources
# The average rating in thousandths, -1 while unrated (so unrated sorts last); SQLite and
# PostgreSQL both divide integers to an integer.
rating_score = case(
    (table.c.rating_count > 0, table.c.rating_sum * 1000 / table.c.rating_count), else_=-1
)


@dataclass(frozen=True)
class Browse:
    """What a listing asks for."""

    level: int = 0
    tag: str = ""
    min_rating: int = 0
    top_rated: bool = False
    saved_by: str = ""


class ResourceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, resource: Resource) -> None:
        """Insert a new resource (version 1) or replace the stored one a version older;
        the rating totals are the ratings' to move."""
        await save_versioned(self.session, table, [_values(resource)], ["id"])
        await self.session.execute(
            delete(library_resource_tags).where(library_resource_tags.c.resource_id == resource.id)
        )
        if resource.tags:
            await self.session.execute(
                library_resource_tags.insert(),
                [
                    {"resource_id": resource.id, "tag": tag, "community_id": resource.community_id}
                    for tag in resource.tags
                ],
            )

    async def get(self, community_id: str, resource_id: str) -> Resource | None:
        row = (
            await self.session.execute(
                select(table).where(table.c.community_id == community_id, table.c.id == resource_id)
            )
        ).first()
        return _resource(row) if row else None

    async def by_id(self, community_id: str, resource_ids: Sequence[str]) -> dict[str, Resource]:
        if not resource_ids:
            return {}
        rows = await self.session.execute(
            select(table).where(
                table.c.community_id == community_id, table.c.id.in_(list(resource_ids))
            )
        )
        return {row.id: _resource(row) for row in rows}

    async def browse(
        self, community_id: str, asked: Browse, after: Position | None, limit: int
    ) -> list[tuple[Resource, int]]:
        """Resources with their score (see rating_score), in the order asked, after `after`."""
        query = select(table, rating_score.label("score")).where(
            table.c.community_id == community_id
        )
        if asked.level:
            query = query.where(table.c.level == asked.level)
        if asked.tag:
            query = query.where(
                exists().where(
                    library_resource_tags.c.community_id == community_id,
                    library_resource_tags.c.tag == asked.tag.casefold(),
                    library_resource_tags.c.resource_id == table.c.id,
                )
            )
        if asked.min_rating:
            query = query.where(
                table.c.rating_count > 0,
                table.c.rating_sum >= asked.min_rating * table.c.rating_count,
            )
        if asked.saved_by:
            query = query.where(
                exists().where(
                    resource_saves.c.community_id == community_id,
                    resource_saves.c.user_id == asked.saved_by,
                    resource_saves.c.resource_id == table.c.id,
                )
            )
        if asked.top_rated:
            if after is not None:
                query = query.where(_after_score(after))
            query = query.order_by(
                rating_score.desc(), table.c.created_at.desc(), table.c.id.desc()
            )
        else:
            if after is not None:
                created, resource_id = after
                query = query.where(
                    or_(
                        table.c.created_at < created,
                        and_(table.c.created_at == created, table.c.id < resource_id),
                    )
                )
            query = query.order_by(table.c.created_at.desc(), table.c.id.desc())
        rows = await self.session.execute(query.limit(limit))
        return [(_resource(row), int(row.score)) for row in rows]

    async def move_rating(self, resource_id: str, sum_delta: int, count_delta: int) -> None:
        """Increments commute: concurrent ratings of one resource never lose one."""
        await self.session.execute(
            update(table)
            .where(table.c.id == resource_id)
            .values(
                rating_sum=table.c.rating_sum + sum_delta,
                rating_count=table.c.rating_count + count_delta,
            )
        )


class MemberMarks:
    """A member's ratings and saves."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rating(self, resource_id: str, user_id: str) -> tuple[int, int]:
        """The member's stars for the resource (0: none) and the rating row's version."""
        row = (
            await self.session.execute(
                select(resource_ratings.c.stars, resource_ratings.c.version).where(
                    resource_ratings.c.resource_id == resource_id,
                    resource_ratings.c.user_id == user_id,
                )
            )
        ).first()
        return (int(row.stars), int(row.version)) if row else (0, 0)

    async def rate(
        self, resource: Resource, user_id: str, stars: int, version: int, now: datetime
    ) -> None:
        """Write the rating over the version read (a concurrent one makes the write stale
        and the transaction run again)."""
        await save_versioned(
            self.session,
            resource_ratings,
            [
                {
                    "resource_id": resource.id,
                    "user_id": user_id,
                    "community_id": resource.community_id,
                    "stars": stars,
                    "rated_at": now,
                    "version": version,
                }
            ],
            ["resource_id", "user_id"],
        )

    async def save(self, resource: Resource, user_id: str, now: datetime) -> bool:
        """Save the resource for the member; False when it was saved already."""
        dialect = self.session.get_bind().dialect.name
        insert: Any = insert_for(dialect)
        result = await self.session.execute(
            insert(resource_saves)
            .values(
                resource_id=resource.id,
                user_id=user_id,
                community_id=resource.community_id,
                saved_at=now,
            )
            .on_conflict_do_nothing()
        )
        return bool(getattr(result, "rowcount", 0))

    async def unsave(self, resource_id: str, user_id: str) -> bool:
        result = await self.session.execute(
            delete(resource_saves).where(
                resource_saves.c.resource_id == resource_id, resource_saves.c.user_id == user_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def of(
        self, user_id: str, resource_ids: Sequence[str]
    ) -> tuple[dict[str, int], set[str]]:
        """The member's stars by resource, and the resources they saved, among these."""
        if not resource_ids or not user_id:
            return {}, set()
        ids = list(resource_ids)
        ratings = await self.session.execute(
            select(resource_ratings.c.resource_id, resource_ratings.c.stars).where(
                resource_ratings.c.user_id == user_id, resource_ratings.c.resource_id.in_(ids)
            )
        )
        saves = await self.session.execute(
            select(resource_saves.c.resource_id).where(
                resource_saves.c.user_id == user_id, resource_saves.c.resource_id.in_(ids)
            )
        )
        return {row.resource_id: int(row.stars) for row in ratings}, {
            row.resource_id for row in saves
        }


def score_position(resource: Resource, score: int) -> Position:
    """A top-rated page's position: the score travels in the id part of the token."""
    return resource.created_at, f"{score}:{resource.id}"


def _after_score(after: Position) -> ColumnElement[bool]:
    created, key = after
    score_text, _, resource_id = key.partition(":")
    try:
        score = int(score_text)
    except ValueError:
        score = -1
    same: ColumnElement[bool] = rating_score.is_not_distinct_from(score)
    return or_(
        rating_score < score,
        and_(same, table.c.created_at < created),
        and_(same, table.c.created_at == created, table.c.id < resource_id),
    )


def _values(resource: Resource) -> dict[str, Any]:
    return {
        "id": resource.id,
        "community_id": resource.community_id,
        "title": resource.title,
        "url": resource.url,
        "type": int(resource.type),
        "level": int(resource.level),
        "tags": list(resource.tags),
        "review": resource.review,
        "added_by": resource.added_by,
        "created_at": resource.created_at,
        "updated_at": resource.updated_at,
        "version": resource.version,
    }


def _resource(row: Row[Any]) -> Resource:
    return Resource(
        id=row.id,
        community_id=row.community_id,
        title=row.title,
        url=row.url,
        type=ResourceType(int(row.type)),
        level=Level(int(row.level)),
        tags=tuple(row.tags or []),
        review=row.review,
        added_by=row.added_by,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at) if row.updated_at else None,
        version=int(row.version),
        rating_sum=int(row.rating_sum),
        rating_count=int(row.rating_count),
    )
