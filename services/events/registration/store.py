"""Registrations and the seat counters in the events service's database.

A seat is taken by one conditional statement on the activity's row (a seat while the
capacity allows and nobody waits), so concurrent changes never exceed the capacity: on
PostgreSQL the second statement waits for the first's row lock and re-reads the row. A
group of registrations reads the rows locked (`with_tickets`) and writes the counters it
decided (`set_counts`) before the lock is released
(docs/decisions/0027-seats-by-conditional-counter.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity, ActivityState
from services.events.activities.store import activity_from_row
from services.events.registration.domain import (
    ACTIVE,
    Attendance,
    Registration,
    RegistrationState,
)
from services.events.store.tables import activities, registrations
from services.kit.database import utc
from services.kit.versioned import save_versioned

_SCHEDULED = int(ActivityState.SCHEDULED)

# A group of registrations runs these once per group: built once, so neither the
# statement nor its cache key is made again for every group.
_OF_MEMBERS = select(registrations).where(
    registrations.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
    registrations.c.user_id.in_(bindparam("user_ids", expanding=True)),
)
_INSERT = registrations.insert()
_WITH_TICKETS = (
    select(activities)
    .where(
        activities.c.community_id == bindparam("community_id"),
        activities.c.id.in_(bindparam("activity_ids", expanding=True)),
    )
    .with_for_update()
)
_SET_COUNTS = (
    update(activities)
    .where(activities.c.id == bindparam("activity_id"))
    .values(
        seats_taken=bindparam("seats"),
        waitlist_length=bindparam("waiting"),
        waitlist_tickets=bindparam("tickets"),
    )
)


class RegistrationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, *saved: Registration) -> None:
        """New registrations, or stored ones a version older (StaleWrite if not)."""
        await save_versioned(self.session, registrations, [_row(r) for r in saved], ["id"])

    async def of_member(
        self, activity_id: str, user_id: str, *, for_update: bool = False
    ) -> Registration | None:
        query = select(registrations).where(
            registrations.c.activity_id == activity_id, registrations.c.user_id == user_id
        )
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return registration_from_row(row) if row else None

    async def by_id(self, registration_id: str, *, for_update: bool = False) -> Registration | None:
        query = select(registrations).where(registrations.c.id == registration_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return registration_from_row(row) if row else None

    async def in_states(
        self, activity_id: str, states: Sequence[RegistrationState]
    ) -> list[Registration]:
        rows = await self.session.execute(
            select(registrations)
            .where(
                registrations.c.activity_id == activity_id,
                registrations.c.state.in_([int(s) for s in states]),
            )
            .order_by(registrations.c.registered_at, registrations.c.id)
            .with_for_update()
        )
        return [registration_from_row(row) for row in rows]

    async def listed(
        self, activity_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[Registration]:
        query = select(registrations).where(registrations.c.activity_id == activity_id)
        if after is not None:
            query = query.where(
                or_(
                    registrations.c.registered_at > after[0],
                    and_(registrations.c.registered_at == after[0], registrations.c.id > after[1]),
                )
            )
        rows = await self.session.execute(
            query.order_by(registrations.c.registered_at, registrations.c.id).limit(limit)
        )
        return [registration_from_row(row) for row in rows]

    async def of_member_in(self, community_id: str, user_id: str) -> list[Registration]:
        rows = await self.session.execute(
            select(registrations).where(
                registrations.c.community_id == community_id, registrations.c.user_id == user_id
            )
        )
        return [registration_from_row(row) for row in rows]

    async def of_members(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], Registration]:
        """The registrations of those (activity id, user id) pairs that have one: one
        statement for a whole group."""
        if not pairs:
            return {}
        rows = await self.session.execute(
            _OF_MEMBERS,
            {
                "activity_ids": list({activity for activity, _ in pairs}),
                "user_ids": list({user for _, user in pairs}),
            },
        )
        found = (registration_from_row(row) for row in rows)
        return {
            (r.activity_id, r.user_id): r
            for r in found
            if r.user_id is not None and (r.activity_id, r.user_id) in pairs
        }

    async def insert_many(self, new: Sequence[Registration]) -> None:
        """Registrations never stored before, with one statement."""
        if new:
            await self.session.execute(_INSERT, [_row(r) for r in new])

    async def upcoming_of_member(
        self, community_id: str, user_id: str, registered_by: datetime, now: datetime
    ) -> list[tuple[str, str]]:
        """(activity id, registration id) of the member's active registrations, made by
        `registered_by`, in activities of the community that have not started."""
        rows = await self.session.execute(
            select(registrations.c.activity_id, registrations.c.id)
            .join(activities, activities.c.id == registrations.c.activity_id)
            .where(
                registrations.c.community_id == community_id,
                registrations.c.user_id == user_id,
                registrations.c.state.in_([int(s) for s in ACTIVE]),
                registrations.c.registered_at <= registered_by,
                activities.c.state == _SCHEDULED,
                activities.c.start_time > now,
            )
            .order_by(registrations.c.activity_id)
        )
        return [(str(activity_id), str(registration_id)) for activity_id, registration_id in rows]

    async def next_waiting(self, activity_id: str) -> Registration | None:
        """The first on the waitlist: the lowest ticket."""
        row = (
            await self.session.execute(
                select(registrations)
                .where(
                    registrations.c.activity_id == activity_id,
                    registrations.c.state == int(RegistrationState.WAITLISTED),
                )
                .order_by(registrations.c.waitlist_ticket)
                .limit(1)
                .with_for_update()
            )
        ).first()
        return registration_from_row(row) if row else None

    async def waitlist_position(self, registration: Registration) -> int:
        if registration.state is not RegistrationState.WAITLISTED:
            return 0
        ahead = await self.session.scalar(
            select(func.count())
            .select_from(registrations)
            .where(
                registrations.c.activity_id == registration.activity_id,
                registrations.c.state == int(RegistrationState.WAITLISTED),
                registrations.c.waitlist_ticket <= registration.waitlist_ticket,
            )
        )
        return int(ahead or 0)

    async def counts(self, activity_id: str) -> dict[tuple[int, int], int]:
        """How many registrations of the activity are in each (state, attendance)."""
        rows = await self.session.execute(
            select(registrations.c.state, registrations.c.attendance, func.count())
            .where(registrations.c.activity_id == activity_id)
            .group_by(registrations.c.state, registrations.c.attendance)
        )
        return {(int(state), int(attendance)): int(n) for state, attendance, n in rows}


class Seats:
    """The seat and waitlist counters of an activity's row."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def take(self, activity_id: str) -> bool:
        """A seat, while the capacity allows and nobody waits for one."""
        taken = await self.session.execute(
            update(activities)
            .where(
                activities.c.id == activity_id,
                activities.c.state == _SCHEDULED,
                activities.c.waitlist_length == 0,
                or_(activities.c.capacity == 0, activities.c.seats_taken < activities.c.capacity),
            )
            .values(seats_taken=activities.c.seats_taken + 1)
        )
        return bool(getattr(taken, "rowcount", 0))

    async def release(self, activity_id: str) -> None:
        await self.session.execute(
            update(activities)
            .where(activities.c.id == activity_id, activities.c.seats_taken > 0)
            .values(seats_taken=activities.c.seats_taken - 1)
        )

    async def leave_waitlist(self, activity_id: str) -> None:
        await self.session.execute(
            update(activities)
            .where(activities.c.id == activity_id, activities.c.waitlist_length > 0)
            .values(waitlist_length=activities.c.waitlist_length - 1)
        )

    async def with_tickets(
        self, community_id: str, ids: set[str]
    ) -> dict[str, tuple[Activity, int]]:
        """The community's activities of `ids` with the last waitlist ticket each gave,
        locked until the transaction ends (on PostgreSQL): what a group of registrations
        decides its seats against, in one statement."""
        rows = await self.session.execute(
            _WITH_TICKETS, {"community_id": community_id, "activity_ids": list(ids)}
        )
        return {row.id: (activity_from_row(row), int(row.waitlist_tickets)) for row in rows}

    async def set_counts(
        self, activity_id: str, seats_taken: int, waitlist_length: int, waitlist_tickets: int
    ) -> None:
        """The counters a group decided, over the rows it locked (with_tickets)."""
        await self.session.execute(
            _SET_COUNTS,
            {
                "activity_id": activity_id,
                "seats": seats_taken,
                "waiting": waitlist_length,
                "tickets": waitlist_tickets,
            },
        )

    async def promote_one(self, activity_id: str) -> bool:
        """A waiting member's seat: one from the waitlist to the seats, while the capacity
        allows."""
        moved = await self.session.execute(
            update(activities)
            .where(
                activities.c.id == activity_id,
                activities.c.state == _SCHEDULED,
                activities.c.waitlist_length > 0,
                or_(activities.c.capacity == 0, activities.c.seats_taken < activities.c.capacity),
            )
            .values(
                seats_taken=activities.c.seats_taken + 1,
                waitlist_length=activities.c.waitlist_length - 1,
            )
        )
        return bool(getattr(moved, "rowcount", 0))


def _row(registration: Registration) -> dict[str, Any]:
    return {
        "id": registration.id,
        "activity_id": registration.activity_id,
        "community_id": registration.community_id,
        "user_id": registration.user_id,
        "state": int(registration.state),
        "attendance": int(registration.attendance),
        "waitlist_ticket": registration.waitlist_ticket,
        "hold_until": registration.hold_until,
        "answers": [list(pair) for pair in registration.answers],
        "registered_at": registration.registered_at,
        "updated_at": registration.updated_at,
        "version": registration.version,
    }


def registration_from_row(row: Row[Any]) -> Registration:
    return Registration(
        id=row.id,
        activity_id=row.activity_id,
        community_id=row.community_id,
        user_id=row.user_id,
        state=RegistrationState(row.state),
        attendance=Attendance(row.attendance),
        waitlist_ticket=row.waitlist_ticket,
        hold_until=utc(row.hold_until) if row.hold_until is not None else None,
        answers=tuple((str(key), str(text)) for key, text in row.answers or ()),
        registered_at=utc(row.registered_at),
        updated_at=utc(row.updated_at),
        version=row.version,
    )
