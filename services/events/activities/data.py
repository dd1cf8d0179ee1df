"""What the events service holds about a member as an organizer, for ExportMyData and
EraseMyData (and MemberErased): the activities they host or speak at. Erasure removes them
as host and speaker and keeps the activities, which are the community's calendar
(docs/decisions/0016-data-rights-across-services.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import ActivityKind
from services.events.store.tables import activities
from services.kit.database import utc

# The host of an activity whose host erased their data.
ERASED_HOST = ""


async def export_hosted(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(activities)
        .where(activities.c.community_id == community_id, activities.c.host_user_id == user_id)
        .order_by(activities.c.start_time, activities.c.id)
    )
    return [
        {
            "id": row.id,
            "kind": ActivityKind(row.kind).name.lower(),
            "title": row.title,
            "description": row.description,
            "start_time": utc(row.start_time),
            "end_time": utc(row.end_time) if row.end_time else None,
            "capacity": row.capacity,
            "location": row.location,
            "create_time": utc(row.created_at),
        }
        for row in rows
    ]


async def export_speaking(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(activities.c.id, activities.c.title, activities.c.speaker_user_ids).where(
            activities.c.community_id == community_id
        )
    )
    return [
        {"id": row.id, "title": row.title}
        for row in rows
        if user_id in (row.speaker_user_ids or ())
    ]


async def remove_hosting(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(activities)
        .where(activities.c.community_id == community_id, activities.c.host_user_id == user_id)
        .values(host_user_id=ERASED_HOST, version=activities.c.version + 1)
    )
    rows = await session.execute(
        select(activities.c.id, activities.c.speaker_user_ids).where(
            activities.c.community_id == community_id
        )
    )
    for row in rows.fetchall():
        speakers = list(row.speaker_user_ids or ())
        if user_id in speakers:
            await session.execute(
                update(activities)
                .where(activities.c.id == row.id)
                .values(
                    speaker_user_ids=[s for s in speakers if s != user_id],
                    version=activities.c.version + 1,
                )
            )


EXPORTS = {"hosted_activities": export_hosted, "speaking_at": export_speaking}
ERASERS = (remove_hosting,)
