"""The fact of feedback: ratings only; the comment stays in the events service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.feedback.domain import Feedback
from services.events.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.events.v1 import activities_events_pb2 as events


async def feedback_submitted(session: AsyncSession, item: Feedback) -> None:
    event = events.FeedbackSubmitted(
        feedback_id=item.id,
        activity_id=item.activity_id,
        community_id=item.community_id,
        user_id=item.user_id or "",
        overall_rating=item.rating,
        version=item.version,
        submit_time=timestamp(item.submitted_at),
    )
    if item.would_recommend is not None:
        event.would_recommend = item.would_recommend
    await OUTBOX.add(
        session,
        event,
        community_id=item.community_id,
        subject=f"communities/{item.community_id}/activities/{item.activity_id}/feedback/{item.id}",
    )
