"""What learning paths hold about a member, for ExportMyData and EraseMyData (and
MemberErased): their enrollments and progress, and the recommendations that reached them.

Erasure removes both (a completed path was already published as PathCompleted, so the
points it earned stay in members) and keeps the paths a member created, under no author.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import learning_paths, path_enrollments, path_recommended_members
from services.kit.database import utc

# The creator of a path whose creator erased their data.
ERASED_CREATOR = ""


async def export_enrollments(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(path_enrollments)
        .where(
            path_enrollments.c.community_id == community_id, path_enrollments.c.user_id == user_id
        )
        .order_by(path_enrollments.c.enrolled_at, path_enrollments.c.path_id)
    )
    return [
        {
            "path_id": row.path_id,
            "completed_step_ids": list(row.completed_steps or []),
            "enroll_time": utc(row.enrolled_at),
            "last_progress_time": utc(row.last_progress_at),
            "complete_time": utc(row.completed_at) if row.completed_at else None,
        }
        for row in rows
    ]


async def export_recommendations(
    session: AsyncSession, community_id: str, user_id: str
) -> list[Any]:
    table = path_recommended_members
    rows = await session.execute(
        select(table)
        .where(table.c.community_id == community_id, table.c.user_id == user_id)
        .order_by(table.c.recommended_at, table.c.recommendation_id)
    )
    return [
        {
            "recommendation_id": row.recommendation_id,
            "path_id": row.path_id,
            "recommend_time": utc(row.recommended_at),
        }
        for row in rows
    ]


async def delete_enrollments(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        delete(path_enrollments).where(
            path_enrollments.c.community_id == community_id, path_enrollments.c.user_id == user_id
        )
    )


async def delete_recommendations(session: AsyncSession, community_id: str, user_id: str) -> None:
    table = path_recommended_members
    await session.execute(
        delete(table).where(table.c.community_id == community_id, table.c.user_id == user_id)
    )


async def remove_path_authorship(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(learning_paths)
        .where(
            learning_paths.c.community_id == community_id, learning_paths.c.created_by == user_id
        )
        .values(created_by=ERASED_CREATOR, version=learning_paths.c.version + 1)
    )


EXPORTS = {"path_enrollments": export_enrollments, "path_recommendations": export_recommendations}
ERASERS = (delete_enrollments, delete_recommendations, remove_path_authorship)
