"""Saved segments, and the members a rule matches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.kit.versioned import StaleWrite, update_versioned
from services.members.segments.rules import Node, Segment
from services.members.segments.sql import members_matching
from services.members.store.tables import (
    memberships,
    segments,
)


class SegmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, segment: Segment) -> None:
        await self.session.execute(segments.insert().values(**_segment_row(segment)))

    async def save(self, segment: Segment) -> None:
        """Store a changed segment; StaleWrite when it changed since it was read."""
        await update_versioned(self.session, segments, _segment_row(segment), ["id"])

    async def delete(self, segment: Segment) -> None:
        """Delete the segment as read; StaleWrite when it changed or went meanwhile."""
        result = await self.session.execute(
            delete(segments).where(
                segments.c.id == segment.id,
                segments.c.community_id == segment.community_id,
                segments.c.version == segment.version,
            )
        )
        if not getattr(result, "rowcount", 0):
            raise StaleWrite(f"segment {segment.id} changed meanwhile")

    async def get(self, community_id: str, segment_id: str) -> Segment | None:
        row = (
            await self.session.execute(
                select(segments).where(
                    segments.c.id == segment_id, segments.c.community_id == community_id
                )
            )
        ).first()
        return _segment(row) if row else None

    async def name_taken(self, community_id: str, name: str, *, other_than: str = "") -> bool:
        found = await self.session.scalar(
            select(segments.c.id).where(
                segments.c.community_id == community_id,
                segments.c.name == name,
                segments.c.id != other_than,
            )
        )
        return found is not None

    async def listing(
        self, community_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Segment]:
        """The community's segments, oldest first, after the `after` position."""
        query = select(segments).where(segments.c.community_id == community_id)
        if after is not None:
            query = query.where(tuple_(segments.c.created_at, segments.c.id) > tuple_(*after))
        query = query.order_by(segments.c.created_at, segments.c.id).limit(limit)
        return [_segment(row) for row in (await self.session.execute(query)).all()]


def _segment_row(segment: Segment) -> dict[str, object]:
    return {
        "id": segment.id,
        "community_id": segment.community_id,
        "name": segment.name,
        "description": segment.description,
        "rule": segment.rule,
        "created_by_user_id": segment.created_by_user_id,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
        "version": segment.version,
    }


def _segment(row: Row[Any]) -> Segment:
    return Segment(
        id=row.id,
        community_id=row.community_id,
        name=row.name,
        description=row.description,
        rule=row.rule,
        created_by_user_id=row.created_by_user_id,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        version=row.version,
    )


async def count_members(
    session: AsyncSession, community_id: str, rule: Node, *, now: datetime, grace_days: int
) -> int:
    """How many active members of the community the rule selects."""
    matching = members_matching(community_id, rule, now=now, grace_days=grace_days)
    count = await session.scalar(select(func.count()).select_from(matching.subquery()))
    return int(count or 0)


async def list_matching_members(
    session: AsyncSession,
    community_id: str,
    rule: Node,
    *,
    now: datetime,
    grace_days: int,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[datetime, str]]:
    """(join time, user id) of matching active members, longest-standing first."""
    query = members_matching(community_id, rule, now=now, grace_days=grace_days).add_columns(
        memberships.c.joined_at
    )
    if after is not None:
        query = query.where(tuple_(memberships.c.joined_at, memberships.c.user_id) > tuple_(*after))
    query = query.order_by(memberships.c.joined_at, memberships.c.user_id).limit(limit)
    return [(utc(row.joined_at), row.user_id) for row in (await session.execute(query)).all()]
