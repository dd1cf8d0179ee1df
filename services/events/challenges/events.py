"""The fact of a completed challenge, staged in the outbox in the counting transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.challenges.domain import Goal
from services.events.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.events.v1 import activities_events_pb2 as events


async def challenge_completed(
    session: AsyncSession, goal: Goal, user_id: str, completed_at: datetime
) -> None:
    await OUTBOX.add(
        session,
        events.ChallengeCompleted(
            community_id=goal.community_id,
            challenge_id=goal.activity_id,
            user_id=user_id,
            reward_points=goal.reward_points,
            complete_time=timestamp(completed_at),
        ),
        community_id=goal.community_id,
        subject=f"communities/{goal.community_id}/activities/{goal.activity_id}/challenge",
    )
