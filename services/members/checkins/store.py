"""Storage of check-ins, streaks and a community's check-in settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.kit.projection import upsert
from services.kit.versioned import save_versioned
from services.members.checkins.domain import Checkin, Settings, Streak
from services.members.store.tables import checkin_settings, checkin_streaks, checkins


class CheckinRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, checkin: Checkin, streak: Streak) -> None:
        await self.session.execute(
            checkins.insert().values(
                id=checkin.id,
                community_id=checkin.community_id,
                user_id=checkin.user_id,
                local_date=checkin.local_date,
                time_zone=checkin.time_zone,
                note=checkin.note,
                created_at=checkin.created_at,
            )
        )
        await upsert(
            self.session,
            checkin_streaks,
            [
                {
                    "community_id": streak.community_id,
                    "user_id": streak.user_id,
                    "current": streak.current,
                    "longest": streak.longest,
                    "last_date": streak.last_date,
                    "next_day_start": streak.next_day_start,
                }
            ],
            ["community_id", "user_id"],
        )

    async def streak(self, community_id: str, user_id: str) -> Streak | None:
        row = (
            await self.session.execute(
                select(checkin_streaks).where(
                    checkin_streaks.c.community_id == community_id,
                    checkin_streaks.c.user_id == user_id,
                )
            )
        ).first()
        if row is None:
            return None
        return Streak(
            community_id=row.community_id,
            user_id=row.user_id,
            current=row.current,
            longest=row.longest,
            last_date=row.last_date,
            next_day_start=utc(row.next_day_start),
        )

    async def listing(
        self,
        community_id: str,
        user_id: str,
        *,
        before: tuple[datetime, str] | None,
        limit: int | None,
    ) -> list[Checkin]:
        """The member's check-ins, newest first, before the `before` position."""
        query = select(checkins).where(
            checkins.c.community_id == community_id, checkins.c.user_id == user_id
        )
        if before is not None:
            query = query.where(tuple_(checkins.c.created_at, checkins.c.id) < tuple_(*before))
        query = query.order_by(checkins.c.created_at.desc(), checkins.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return [_checkin(row) for row in (await self.session.execute(query)).all()]

    async def erase_notes(self, community_id: str, user_id: str) -> None:
        # The days stay: they are the member's streak and points, not what they wrote.
        await self.session.execute(
            checkins.update()
            .where(checkins.c.community_id == community_id, checkins.c.user_id == user_id)
            .values(note="")
        )

    async def settings(self, community_id: str) -> Settings:
        row = (
            await self.session.execute(
                select(checkin_settings).where(checkin_settings.c.community_id == community_id)
            )
        ).first()
        if row is None:
            return Settings(community_id)
        return Settings(
            community_id=row.community_id,
            grace_days=row.grace_days,
            version=row.version,
            updated_at=utc(row.updated_at),
        )

    async def save_settings(self, settings: Settings) -> None:
        await save_versioned(
            self.session,
            checkin_settings,
            [
                {
                    "community_id": settings.community_id,
                    "grace_days": settings.grace_days,
                    "version": settings.version,
                    "updated_at": settings.updated_at,
                }
            ],
            ["community_id"],
        )


def _checkin(row: Row[Any]) -> Checkin:
    return Checkin(
        id=row.id,
        community_id=row.community_id,
        user_id=row.user_id,
        local_date=row.local_date,
        time_zone=row.time_zone,
        note=row.note,
        created_at=utc(row.created_at),
    )
