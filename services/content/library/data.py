"""What the resource library holds about a member, for ExportMyData and EraseMyData (and
MemberErased): their ratings and saved resources.

Erasure removes both, moving the resources' rating totals back, and keeps the resources a
member curated under no curator.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import library_resources, resource_ratings, resource_saves
from services.kit.database import utc

ERASED_CURATOR = ""


async def export_ratings(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(resource_ratings)
        .where(
            resource_ratings.c.community_id == community_id, resource_ratings.c.user_id == user_id
        )
        .order_by(resource_ratings.c.rated_at, resource_ratings.c.resource_id)
    )
    return [
        {"resource_id": row.resource_id, "stars": int(row.stars), "rate_time": utc(row.rated_at)}
        for row in rows
    ]


async def export_saves(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(resource_saves)
        .where(resource_saves.c.community_id == community_id, resource_saves.c.user_id == user_id)
        .order_by(resource_saves.c.saved_at, resource_saves.c.resource_id)
    )
    return [{"resource_id": row.resource_id, "save_time": utc(row.saved_at)} for row in rows]


async def delete_ratings(session: AsyncSession, community_id: str, user_id: str) -> None:
    mine = (resource_ratings.c.community_id == community_id) & (
        resource_ratings.c.user_id == user_id
    )
    rows = await session.execute(
        select(resource_ratings.c.resource_id, resource_ratings.c.stars).where(mine)
    )
    for row in rows.all():
        await session.execute(
            update(library_resources)
            .where(library_resources.c.id == row.resource_id)
            .values(
                rating_sum=library_resources.c.rating_sum - int(row.stars),
                rating_count=library_resources.c.rating_count - 1,
            )
        )
    await session.execute(delete(resource_ratings).where(mine))


async def delete_saves(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        delete(resource_saves).where(
            resource_saves.c.community_id == community_id, resource_saves.c.user_id == user_id
        )
    )


async def remove_curation(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(library_resources)
        .where(
            library_resources.c.community_id == community_id,
            library_resources.c.added_by == user_id,
        )
        .values(added_by=ERASED_CURATOR, version=library_resources.c.version + 1)
    )


EXPORTS = {"resource_ratings": export_ratings, "saved_resources": export_saves}
ERASERS = (delete_ratings, delete_saves, remove_curation)
