"""Storage of member care: a community's care settings, the signals sent, and the set-based
queries that find who may need one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.kit.database import insert_for, utc
from services.kit.versioned import save_versioned
from services.members.care.domain import MEMBER_INACTIVE, Holiday, Settings, Signal
from services.members.store.tables import (
    care_settings,
    care_signals,
    checkin_streaks,
    communities,
    member_activity,
    member_profiles,
    memberships,
)


@dataclass(frozen=True)
class CommunityToSweep:
    id: str
    time_zone: str


@dataclass(frozen=True)
class Candidate:
    """A member who may get a signal, with what its rule needs."""

    user_id: str
    profile_zone: str
    since: datetime | None = None  # last active, or joined when never active
    streak_current: int = 0
    streak_last_date: date | None = None
    birth_month: int = 0
    birth_day: int = 0


class CareRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- Settings ---

    async def settings(self, community_id: str) -> Settings:
        row = (
            await self.session.execute(
                select(care_settings).where(care_settings.c.community_id == community_id)
            )
        ).first()
        if row is None:
            return Settings(community_id)
        return Settings(
            community_id=row.community_id,
            inactive_after_days=row.inactive_after_days,
            streak_reminder_hour=row.streak_reminder_hour,
            birthdays=row.birthdays,
            holidays=tuple(Holiday(h["date"], h["name"]) for h in row.holidays),
            version=row.version,
            updated_at=utc(row.updated_at),
        )

    async def save_settings(self, settings: Settings) -> None:
        assert settings.updated_at is not None
        await save_versioned(
            self.session,
            care_settings,
            [
                {
                    "community_id": settings.community_id,
                    "inactive_after_days": settings.inactive_after_days,
                    "streak_reminder_hour": settings.streak_reminder_hour,
                    "birthdays": settings.birthdays,
                    "holidays": [{"date": h.when, "name": h.name} for h in settings.holidays],
                    "version": settings.version,
                    "updated_at": settings.updated_at,
                }
            ],
            ["community_id"],
        )

    # --- Signals ---

    async def record(self, signals: Sequence[Signal]) -> list[Signal]:
        """Store the signals not stored yet; returns those this call stored. A signal another
        sweep already stored (or is storing, on PostgreSQL: the insert waits for it) is
        skipped, so exactly one transaction stages its event."""
        if not signals:
            return []
        dialect = self.session.get_bind().dialect.name
        insert: Any = insert_for(dialect)
        statement = (
            insert(care_signals)
            .on_conflict_do_nothing(
                index_elements=["community_id", "user_id", "kind", "local_date"]
            )
            .returning(care_signals.c.user_id, care_signals.c.kind, care_signals.c.local_date)
        )
        # The rows as parameters, not in the statement: its compiled form is then cached
        # instead of compiled again for each community's count of signals.
        rows = await self.session.execute(statement, [_signal_row(signal) for signal in signals])
        stored = {(row.user_id, row.kind, row.local_date) for row in rows}
        return [s for s in signals if (s.user_id, s.kind, s.local_date) in stored]

    async def sent_on(
        self, community_id: str, kind: str, days: Sequence[date]
    ) -> set[tuple[str, date]]:
        """(member, local day) of the signals of `kind` already sent for any of `days`."""
        rows = await self.session.execute(
            select(care_signals.c.user_id, care_signals.c.local_date).where(
                care_signals.c.community_id == community_id,
                care_signals.c.kind == kind,
                care_signals.c.local_date.in_(list(days)),
            )
        )
        return {(row.user_id, row.local_date) for row in rows}

    async def listing(
        self,
        community_id: str,
        *,
        user_id: str = "",
        kind: str = "",
        before: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[Signal]:
        """Signals newest first, before the `before` position (creation time, event id)."""
        query = select(care_signals).where(care_signals.c.community_id == community_id)
        if user_id:
            query = query.where(care_signals.c.user_id == user_id)
        if kind:
            query = query.where(care_signals.c.kind == kind)
        if before is not None:
            query = query.where(
                tuple_(care_signals.c.created_at, care_signals.c.event_id) < tuple_(*before)
            )
        query = query.order_by(care_signals.c.created_at.desc(), care_signals.c.event_id.desc())
        if limit is not None:
            query = query.limit(limit)
        return [_signal(row) for row in (await self.session.execute(query)).all()]

    async def erase(self, community_id: str, user_id: str) -> None:
        await self.session.execute(
            care_signals.delete().where(
                care_signals.c.community_id == community_id, care_signals.c.user_id == user_id
            )
        )

    # --- What the sweep reads ---

    async def communities_after(self, after_id: str, limit: int) -> list[CommunityToSweep]:
        """A page of the communities still running, in id order."""
        rows = await self.session.execute(
            select(communities.c.id, communities.c.time_zone)
            .where(communities.c.archived_at.is_(None), communities.c.id > after_id)
            .order_by(communities.c.id)
            .limit(limit)
        )
        return [CommunityToSweep(row.id, row.time_zone) for row in rows]

    async def inactive(self, community_id: str, now: datetime, after_days: int) -> list[Candidate]:
        """Members inactive for `after_days` who have not been nudged since they were last
        active (or joined, when never active)."""
        since = func.coalesce(member_activity.c.last_active_at, memberships.c.joined_at)
        cutoff = now - timedelta(days=after_days)
        nudged = exists().where(
            care_signals.c.community_id == memberships.c.community_id,
            care_signals.c.user_id == memberships.c.user_id,
            care_signals.c.kind == MEMBER_INACTIVE,
            care_signals.c.created_at > since,
        )
        query = (
            _members(community_id, now, member_activity)
            .add_columns(since.label("since"))
            .where(
                or_(
                    member_activity.c.last_active_at < cutoff,
                    and_(
                        member_activity.c.last_active_at.is_(None), memberships.c.joined_at < cutoff
                    ),
                ),
                ~nudged,
            )
        )
        return [
            Candidate(row.user_id, row.time_zone or "", since=utc(row.since))
            for row in await self.session.execute(query)
        ]

    async def streaks_running(
        self, community_id: str, now: datetime, grace_days: int
    ) -> list[Candidate]:
        """Members whose streak still runs and whose last check-in was before their today."""
        query = (
            _members(community_id, now, checkin_streaks, outer=False)
            .add_columns(checkin_streaks.c.current, checkin_streaks.c.last_date)
            .where(
                checkin_streaks.c.current >= 1,
                checkin_streaks.c.next_day_start <= now,
                checkin_streaks.c.next_day_start >= now - timedelta(days=grace_days + 1),
            )
        )
        return [
            Candidate(
                row.user_id,
                row.time_zone or "",
                streak_current=row.current,
                streak_last_date=row.last_date,
            )
            for row in await self.session.execute(query)
        ]

    async def birthdays(
        self, community_id: str, now: datetime, pairs: set[tuple[int, int]]
    ) -> list[Candidate]:
        """Members who show their birthday and whose birthday is one of `pairs`."""
        query = (
            _members(community_id, now)
            .add_columns(member_profiles.c.birth_month, member_profiles.c.birth_day)
            .where(
                member_profiles.c.birthday_visible.is_(True),
                or_(
                    *(
                        and_(member_profiles.c.birth_month == m, member_profiles.c.birth_day == d)
                        for m, d in sorted(pairs)
                    )
                ),
            )
        )
        return [
            Candidate(
                row.user_id,
                row.time_zone or "",
                birth_month=row.birth_month,
                birth_day=row.birth_day,
            )
            for row in await self.session.execute(query)
        ]

    async def everyone(self, community_id: str, now: datetime) -> list[Candidate]:
        """Every member who may be greeted on a community holiday."""
        return [
            Candidate(row.user_id, row.time_zone or "")
            for row in await self.session.execute(_members(community_id, now))
        ]


def _members(community_id: str, now: datetime, joined: Any = None, *, outer: bool = True) -> Any:
    """Active members who are neither muted nor banned at `now`, with their profile's zone,
    optionally joined with a per-member table of the same community."""
    source: Any = memberships
    if joined is not None:
        on = and_(
            joined.c.community_id == memberships.c.community_id,
            joined.c.user_id == memberships.c.user_id,
        )
        source = source.join(joined, on, isouter=outer)
    source = source.outerjoin(
        member_profiles,
        and_(
            member_profiles.c.community_id == memberships.c.community_id,
            member_profiles.c.user_id == memberships.c.user_id,
        ),
    )
    return (
        select(memberships.c.user_id, member_profiles.c.time_zone)
        .select_from(source)
        .where(memberships.c.community_id == community_id, *_in_good_standing(now))
    )


def _in_good_standing(now: datetime) -> list[ColumnElement[bool]]:
    return [
        memberships.c.active.is_(True),
        or_(memberships.c.muted_until.is_(None), memberships.c.muted_until <= now),
        or_(memberships.c.banned_until.is_(None), memberships.c.banned_until <= now),
    ]


def _signal_row(signal: Signal) -> dict[str, Any]:
    return {
        "community_id": signal.community_id,
        "user_id": signal.user_id,
        "kind": signal.kind,
        "local_date": signal.local_date,
        "event_id": signal.event_id,
        "days": signal.days,
        "occasion": signal.occasion,
        "holiday_name": signal.holiday_name,
        "created_at": signal.created_at,
    }


def _signal(row: Row[Any]) -> Signal:
    return Signal(
        community_id=row.community_id,
        user_id=row.user_id,
        kind=row.kind,
        local_date=row.local_date,
        created_at=utc(row.created_at),
        days=row.days,
        occasion=row.occasion,
        holiday_name=row.holiday_name,
    )
