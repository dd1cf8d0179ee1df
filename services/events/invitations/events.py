"""The fact of an invitation: the count, never the members."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.events.v1 import activities_events_pb2 as events


async def activity_invited(
    session: AsyncSession,
    *,
    invitation_id: str,
    activity_id: str,
    community_id: str,
    segment_id: str,
    by: str,
    member_count: int,
    now: datetime,
) -> None:
    await OUTBOX.add(
        session,
        events.ActivityInvited(
            invitation_id=invitation_id,
            activity_id=activity_id,
            community_id=community_id,
            segment_id=segment_id,
            invited_by_user_id=by,
            member_count=member_count,
            invite_time=timestamp(now),
        ),
        community_id=community_id,
        subject=f"communities/{community_id}/activities/{activity_id}/invitations/{invitation_id}",
    )
