"""A member's feedback, for ExportMyData and EraseMyData (and MemberErased). Erasure keeps
the ratings and the comment without the member's identity, so the summary still adds up."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.store.tables import feedback
from services.kit.database import utc


async def export_feedback(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(feedback)
        .where(feedback.c.community_id == community_id, feedback.c.user_id == user_id)
        .order_by(feedback.c.submitted_at, feedback.c.id)
    )
    return [
        {
            "id": row.id,
            "activity_id": row.activity_id,
            "rating": row.rating,
            "would_recommend": row.would_recommend,
            "comment": row.comment,
            "submit_time": utc(row.submitted_at),
        }
        for row in rows
    ]


async def anonymise_feedback(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(feedback)
        .where(feedback.c.community_id == community_id, feedback.c.user_id == user_id)
        .values(user_id=None, version=feedback.c.version + 1)
    )


EXPORTS = {"feedback": export_feedback}
ERASERS = (anonymise_feedback,)
