"""A member's progress in challenges, for ExportMyData and EraseMyData (and MemberErased).
Erasure removes it: a leaderboard lists members, and a completed challenge's reward is
recognition's (members erases its own record)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.challenges.store import ChallengeRepository


async def export_challenges(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    return [
        {
            "challenge_id": standing.activity_id,
            "progress": standing.progress,
            "complete_time": standing.completed_at,
        }
        for standing in await ChallengeRepository(session).of_member(community_id, user_id)
    ]


async def forget_challenges(session: AsyncSession, community_id: str, user_id: str) -> None:
    await ChallengeRepository(session).forget_member(community_id, user_id)


EXPORTS = {"challenges": export_challenges}
ERASERS = (forget_challenges,)
