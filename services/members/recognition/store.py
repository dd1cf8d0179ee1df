"""Storage of recognition: the points ledger, member activity, levels and badges."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import insert_for, utc
from services.members.recognition.badges import COUNTED_REASONS
from services.members.recognition.levels import Ladder, Level, default_ladder
from services.members.recognition.points import Award
from services.members.store.tables import (
    communities,
    member_activity,
    member_badges,
    memberships,
    points_ledger,
    recognition_levels,
)


@dataclass(frozen=True)
class Entry:
    id: int
    award: Award
    local_date: date


@dataclass(frozen=True)
class Activity:
    points_total: int
    level: int


class LedgerRepository:
    """The ledger in one transaction. A community's time zone and levels are read once per
    repository: a consumer's batch lands many awards in few communities, and neither changes
    under it (a new ladder goes through `save_ladder`, which forgets the old one)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self._insert: Any = insert_for(self.dialect)
        self._zones: dict[str, zoneinfo.ZoneInfo] = {}
        self._ladders: dict[str, Ladder] = {}

    async def zone(self, community_id: str) -> zoneinfo.ZoneInfo:
        if community_id not in self._zones:
            name = await self.session.scalar(
                select(communities.c.time_zone).where(communities.c.id == community_id)
            )
            self._zones[community_id] = zoneinfo.ZoneInfo(name or "UTC")
        return self._zones[community_id]

    async def append_many(self, dated: Sequence[tuple[Award, date]]) -> dict[tuple[str, str], int]:
        """Insert the entries of facts that have not landed yet, in one statement; the new
        entries' ids by (community, source event id). A fact twice in `dated` lands once."""
        if not dated:
            return {}
        statement = (
            self._insert(points_ledger)
            .on_conflict_do_nothing(index_elements=["community_id", "source_event_id"])
            .returning(
                points_ledger.c.id, points_ledger.c.community_id, points_ledger.c.source_event_id
            )
        )
        rows = await self.session.execute(
            statement,
            [
                {
                    "community_id": award.community_id,
                    "user_id": award.user_id,
                    "amount": award.amount,
                    "reason": award.reason,
                    "source_event_id": award.source_event_id,
                    "awarded_by": award.awarded_by,
                    "note": award.note,
                    "created_at": award.created_at,
                    "local_date": local_date,
                }
                for award, local_date in dated
            ],
        )
        return {(row.community_id, row.source_event_id): int(row.id) for row in rows}

    async def add_points_many(
        self, deltas: dict[tuple[str, str], tuple[int, datetime]]
    ) -> dict[tuple[str, str], Activity]:
        """Add each member's points (and move their last activity to the latest time) in one
        statement; per member the total after it and the level stored before it. Concurrent
        awards serialize on the rows, taken in key order so two batches never deadlock."""
        if not deltas:
            return {}
        rows = await self.session.execute(
            _add_points(self.dialect),
            [
                {
                    "community_id": community_id,
                    "user_id": user_id,
                    "points_total": amount,
                    "level": 1,
                    "last_active_at": at,
                }
                for (community_id, user_id), (amount, at) in sorted(deltas.items())
            ],
        )
        return {
            (row.community_id, row.user_id): Activity(int(row.points_total), int(row.level))
            for row in rows
        }

    async def active_members(self, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (community, user) pairs are members now, in one read."""
        if not keys:
            return set()
        # Two INs, not a row-value IN: SQLite scans the whole table for the latter.
        rows = await self.session.execute(
            select(memberships.c.community_id, memberships.c.user_id).where(
                memberships.c.community_id.in_({community for community, _ in keys}),
                memberships.c.user_id.in_({user for _, user in keys}),
                memberships.c.active.is_(True),
            )
        )
        return {(row.community_id, row.user_id) for row in rows} & keys

    async def mark_all_active(self, latest: dict[tuple[str, str], datetime]) -> None:
        """Move each member's last activity forward to its time (never back), one executemany
        of one statement built once per dialect (a multi-row VALUES is compiled anew for every
        batch size)."""
        if not latest:
            return
        await self.session.execute(
            _mark_active(self.dialect),
            [
                {
                    "community_id": community_id,
                    "user_id": user_id,
                    "points_total": 0,
                    "level": 1,
                    "last_active_at": at,
                }
                # In key order: batches upserting at once lock rows in the same order.
                for (community_id, user_id), at in sorted(latest.items())
            ],
        )

    async def set_levels(self, levels: dict[tuple[str, str], int]) -> None:
        if levels:
            await self.session.execute(
                member_activity.update()
                .where(
                    member_activity.c.community_id == bindparam("c"),
                    member_activity.c.user_id == bindparam("u"),
                )
                .values(level=bindparam("new_level")),
                [
                    {"c": community_id, "u": user_id, "new_level": level}
                    for (community_id, user_id), level in sorted(levels.items())
                ],
            )

    async def activity(self, community_id: str, user_id: str) -> Activity | None:
        row = (
            await self.session.execute(
                select(member_activity.c.points_total, member_activity.c.level).where(
                    member_activity.c.community_id == community_id,
                    member_activity.c.user_id == user_id,
                )
            )
        ).first()
        return Activity(int(row.points_total), int(row.level)) if row else None

    async def activities(self, community_id: str) -> dict[str, Activity]:
        rows = await self.session.execute(
            select(
                member_activity.c.user_id, member_activity.c.points_total, member_activity.c.level
            ).where(member_activity.c.community_id == community_id)
        )
        return {row.user_id: Activity(int(row.points_total), int(row.level)) for row in rows}

    async def reason_counts(
        self, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, int]]:
        """How many entries of each reason a badge counts every one of these members has."""
        if not keys:
            return {}
        rows = await self.session.execute(
            select(
                points_ledger.c.community_id,
                points_ledger.c.user_id,
                points_ledger.c.reason,
                func.count().label("entries"),
            )
            .where(
                points_ledger.c.community_id.in_({community for community, _ in keys}),
                points_ledger.c.user_id.in_({user for _, user in keys}),
                points_ledger.c.reason.in_(COUNTED_REASONS),
            )
            .group_by(points_ledger.c.community_id, points_ledger.c.user_id, points_ledger.c.reason)
        )
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for row in rows:
            key = (row.community_id, row.user_id)
            if key in keys:
                counts.setdefault(key, {})[row.reason] = int(row.entries)
        return counts

    async def badges_held(self, keys: set[tuple[str, str]]) -> set[tuple[str, str, str]]:
        """(community, user, code) of every badge these members hold."""
        if not keys:
            return set()
        rows = await self.session.execute(
            select(
                member_badges.c.community_id, member_badges.c.user_id, member_badges.c.code
            ).where(
                member_badges.c.community_id.in_({community for community, _ in keys}),
                member_badges.c.user_id.in_({user for _, user in keys}),
            )
        )
        return {
            (row.community_id, row.user_id, row.code)
            for row in rows
            if (row.community_id, row.user_id) in keys
        }

    async def add_badges(
        self, earned: Sequence[tuple[str, str, str, int, datetime]]
    ) -> set[tuple[str, str, str]]:
        """Insert (community, user, code, entry id, time) badges; those that were new."""
        if not earned:
            return set()
        statement = (
            self._insert(member_badges)
            .on_conflict_do_nothing(index_elements=["community_id", "user_id", "code"])
            .returning(member_badges.c.community_id, member_badges.c.user_id, member_badges.c.code)
        )
        rows = await self.session.execute(
            statement,
            [
                {
                    "community_id": community_id,
                    "user_id": user_id,
                    "code": code,
                    "entry_id": entry_id,
                    "awarded_at": at,
                }
                for community_id, user_id, code, entry_id, at in earned
            ],
        )
        return {(row.community_id, row.user_id, row.code) for row in rows}

    async def badges(self, community_id: str, user_id: str) -> list[tuple[str, datetime]]:
        rows = await self.session.execute(
            select(member_badges.c.code, member_badges.c.awarded_at)
            .where(member_badges.c.community_id == community_id, member_badges.c.user_id == user_id)
            .order_by(member_badges.c.awarded_at, member_badges.c.code)
        )
        return [(row.code, utc(row.awarded_at)) for row in rows]

    async def ladder(self, community_id: str) -> Ladder:
        if community_id not in self._ladders:
            self._ladders[community_id] = await self._read_ladder(community_id)
        return self._ladders[community_id]

    async def _read_ladder(self, community_id: str) -> Ladder:
        rows = (
            await self.session.execute(
                select(recognition_levels)
                .where(recognition_levels.c.community_id == community_id)
                .order_by(recognition_levels.c.level)
            )
        ).all()
        if not rows:
            return default_ladder()
        return Ladder(
            tuple(Level(row.level, int(row.min_points), tuple(row.privileges)) for row in rows),
            version=max(int(row.version) for row in rows),
        )

    async def save_ladder(self, community_id: str, ladder: Ladder) -> int:
        """Replace the community's levels; returns their new version."""
        self._ladders.pop(community_id, None)
        current = await self.session.scalar(
            select(func.max(recognition_levels.c.version)).where(
                recognition_levels.c.community_id == community_id
            )
        )
        version = int(current or 0) + 1
        await self.session.execute(
            recognition_levels.delete().where(recognition_levels.c.community_id == community_id)
        )
        await self.session.execute(
            recognition_levels.insert(),
            [
                {
                    "community_id": community_id,
                    "level": level.number,
                    "min_points": level.min_points,
                    "privileges": list(level.privileges),
                    "version": version,
                }
                for level in ladder.levels
            ],
        )
        return version

    async def holds(self, community_id: str, user_id: str, privilege: str) -> bool:
        """Whether the member's level unlocks `privilege` (true when no level gates it)."""
        ladder = await self.ladder(community_id)
        if not ladder.gates(privilege):
            return True
        activity = await self.activity(community_id, user_id)
        return ladder.holds(activity.level if activity else 1, privilege)

    async def unlocked(self, community_id: str, user_id: str, privilege: str) -> bool:
        """Whether a level the member reached grants `privilege` explicitly (false when no
        level names it): for what plain members may do only once the community says so."""
        ladder = await self.ladder(community_id)
        if not ladder.gates(privilege):
            return False
        activity = await self.activity(community_id, user_id)
        return ladder.holds(activity.level if activity else 1, privilege)

    async def entries(
        self, community_id: str, user_id: str, *, before: int | None, limit: int
    ) -> list[Entry]:
        query = select(points_ledger).where(
            points_ledger.c.community_id == community_id, points_ledger.c.user_id == user_id
        )
        if before is not None:
            query = query.where(points_ledger.c.id < before)
        rows = await self.session.execute(query.order_by(points_ledger.c.id.desc()).limit(limit))
        return [_entry(row) for row in rows]

    async def known(self, community_id: str, user_id: str) -> bool:
        """Whether the user ever belonged to the community."""
        found = await self.session.scalar(
            select(memberships.c.user_id).where(
                memberships.c.community_id == community_id, memberships.c.user_id == user_id
            )
        )
        return found is not None

    # --- leaderboards from SQL: the fallback without Redis and the source of rebuilds ---

    async def board(
        self, community_id: str, since: date | None, *, offset: int, limit: int
    ) -> list[tuple[str, int]]:
        """Members with positive points since `since` (all time when None), best first."""
        if since is None:
            points = member_activity.c.points_total
            query = (
                select(member_activity.c.user_id, points.label("points"))
                .where(member_activity.c.community_id == community_id, points > 0)
                .order_by(points.desc(), self._binary(member_activity.c.user_id).desc())
            )
        else:
            total = func.sum(points_ledger.c.amount)
            query = (
                select(points_ledger.c.user_id, total.label("points"))
                .where(
                    points_ledger.c.community_id == community_id,
                    points_ledger.c.local_date >= since,
                )
                .group_by(points_ledger.c.user_id)
                .having(total > 0)
                .order_by(total.desc(), self._binary(points_ledger.c.user_id).desc())
            )
        rows = await self.session.execute(query.offset(offset).limit(limit))
        return [(row.user_id, int(row.points)) for row in rows]

    async def high_water(self, community_id: str) -> int:
        found = await self.session.scalar(
            select(func.max(points_ledger.c.id)).where(points_ledger.c.community_id == community_id)
        )
        return int(found or 0)

    async def daily_sums(
        self, community_id: str, since: date, up_to_id: int
    ) -> list[tuple[date, str, int]]:
        rows = await self.session.execute(
            select(
                points_ledger.c.local_date,
                points_ledger.c.user_id,
                func.sum(points_ledger.c.amount).label("points"),
            )
            .where(
                points_ledger.c.community_id == community_id,
                points_ledger.c.local_date >= since,
                points_ledger.c.id <= up_to_id,
            )
            .group_by(points_ledger.c.local_date, points_ledger.c.user_id)
        )
        return [(_date(row.local_date), row.user_id, int(row.points)) for row in rows]

    async def totals(self, community_id: str, up_to_id: int) -> list[tuple[str, int]]:
        rows = await self.session.execute(
            select(points_ledger.c.user_id, func.sum(points_ledger.c.amount).label("points"))
            .where(points_ledger.c.community_id == community_id, points_ledger.c.id <= up_to_id)
            .group_by(points_ledger.c.user_id)
        )
        return [(row.user_id, int(row.points)) for row in rows]

    def _binary(self, column: Any) -> Any:
        # Ties are broken as Redis breaks them: by the bytes of the user id.
        return column.collate("C") if self.dialect == "postgresql" else column


@functools.cache
def _add_points(dialect: str) -> Any:
    base = insert_for(dialect)(member_activity)
    return base.on_conflict_do_update(
        index_elements=["community_id", "user_id"],
        set_={
            "points_total": member_activity.c.points_total + base.excluded.points_total,
            "last_active_at": _later(base.excluded.last_active_at),
        },
    ).returning(
        member_activity.c.community_id,
        member_activity.c.user_id,
        member_activity.c.points_total,
        member_activity.c.level,
    )


@functools.cache
def _mark_active(dialect: str) -> Any:
    base = insert_for(dialect)(member_activity)
    return base.on_conflict_do_update(
        index_elements=["community_id", "user_id"],
        set_={"last_active_at": _later(base.excluded.last_active_at)},
    )


def _later(candidate: Any) -> Any:
    current = member_activity.c.last_active_at
    return case(
        (current.is_(None), candidate),
        (candidate > current, candidate),
        else_=current,
    )


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _entry(row: Any) -> Entry:
    return Entry(
        id=int(row.id),
        award=Award(
            community_id=row.community_id,
            user_id=row.user_id,
            amount=int(row.amount),
            reason=row.reason,
            source_event_id=row.source_event_id,
            created_at=utc(row.created_at),
            awarded_by=row.awarded_by,
            note=row.note,
        ),
        local_date=_date(row.local_date),
    )


async def holds_privilege(
    session: AsyncSession, community_id: str, user_id: str, privilege: str
) -> bool:
    """Whether the member's level grants `privilege` (explicitly: false when no level names
    it). Handed by the app to capabilities below recognition that gate an action on it."""
    return await LedgerRepository(session).unlocked(community_id, user_id, privilege)
