"""Feedback in the events service's database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.feedback.domain import Feedback
from services.events.store.tables import feedback
from services.kit.database import utc
from services.kit.versioned import save_versioned


class FeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, item: Feedback) -> None:
        await save_versioned(self.session, feedback, [_row(item)], ["id"])

    async def of_member(self, activity_id: str, user_id: str) -> Feedback | None:
        row = (
            await self.session.execute(
                select(feedback).where(
                    feedback.c.activity_id == activity_id, feedback.c.user_id == user_id
                )
            )
        ).first()
        return feedback_from_row(row) if row else None

    async def of_activity(self, activity_id: str) -> list[Feedback]:
        rows = await self.session.execute(
            select(feedback)
            .where(feedback.c.activity_id == activity_id)
            .order_by(feedback.c.submitted_at.desc(), feedback.c.id)
        )
        return [feedback_from_row(row) for row in rows]


def _row(item: Feedback) -> dict[str, Any]:
    return {
        "id": item.id,
        "activity_id": item.activity_id,
        "community_id": item.community_id,
        "user_id": item.user_id,
        "rating": item.rating,
        "would_recommend": item.would_recommend,
        "comment": item.comment,
        "submitted_at": item.submitted_at,
        "version": item.version,
    }


def feedback_from_row(row: Row[Any]) -> Feedback:
    return Feedback(
        id=row.id,
        activity_id=row.activity_id,
        community_id=row.community_id,
        user_id=row.user_id,
        rating=row.rating,
        would_recommend=row.would_recommend,
        comment=row.comment,
        submitted_at=utc(row.submitted_at),
        version=row.version,
    )
