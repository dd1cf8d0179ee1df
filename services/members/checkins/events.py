"""The check-in facts the members service publishes, staged in its outbox in the caller's
transaction. The note stays home: it is the member's own words."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.timestamps import timestamp
from services.members.checkins.domain import Checkin, Streak
from services.members.store.outbox import OUTBOX
from studyhall.members.v1 import checkins_events_pb2 as events


class CheckinEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def checked_in(self, checkin: Checkin, streak: Streak) -> None:
        await OUTBOX.add(
            self.session,
            events.CheckedIn(
                community_id=checkin.community_id,
                user_id=checkin.user_id,
                checkin_id=checkin.id,
                local_date=checkin.local_date.isoformat(),
                streak_days=streak.current,
                checkin_time=timestamp(checkin.created_at),
            ),
            community_id=checkin.community_id,
            subject=f"communities/{checkin.community_id}/members/{checkin.user_id}/checkins",
        )
