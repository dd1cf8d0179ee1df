"""Invitations of a segment to an activity, and the members each one reached, in the events
service's database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.store.tables import activity_invitations, activity_invitees
from services.kit.database import utc

# Rows of a large snapshot go in slices: a statement's bound parameters are limited.
_SLICE = 1_000


class InvitationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        invitation_id: str,
        activity_id: str,
        community_id: str,
        segment_id: str,
        by: str,
        now: datetime,
        user_ids: Sequence[str],
    ) -> None:
        await self.session.execute(
            activity_invitations.insert().values(
                id=invitation_id,
                activity_id=activity_id,
                community_id=community_id,
                segment_id=segment_id,
                invited_by_user_id=by,
                member_count=len(user_ids),
                invited_at=now,
            )
        )
        rows = [
            {
                "invitation_id": invitation_id,
                "user_id": user_id,
                "activity_id": activity_id,
                "community_id": community_id,
            }
            for user_id in user_ids
        ]
        for start in range(0, len(rows), _SLICE):
            await self.session.execute(activity_invitees.insert(), rows[start : start + _SLICE])

    async def activities_of(self, community_id: str, user_id: str) -> set[str]:
        """The activities the member was invited to."""
        rows = await self.session.scalars(
            select(activity_invitees.c.activity_id).where(
                activity_invitees.c.community_id == community_id,
                activity_invitees.c.user_id == user_id,
            )
        )
        return set(rows)

    async def of_member(self, community_id: str, user_id: str) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            select(activity_invitations)
            .join(activity_invitees, activity_invitees.c.invitation_id == activity_invitations.c.id)
            .where(
                activity_invitees.c.community_id == community_id,
                activity_invitees.c.user_id == user_id,
            )
            .order_by(activity_invitations.c.invited_at, activity_invitations.c.id)
        )
        return [
            {
                "invitation_id": row.id,
                "activity_id": row.activity_id,
                "segment_id": row.segment_id,
                "invite_time": utc(row.invited_at),
            }
            for row in rows
        ]

    async def forget_member(self, community_id: str, user_id: str) -> None:
        await self.session.execute(
            delete(activity_invitees).where(
                activity_invitees.c.community_id == community_id,
                activity_invitees.c.user_id == user_id,
            )
        )
