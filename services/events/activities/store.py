"""Activities in the events service's database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import (
    Activity,
    ActivityKind,
    ActivityState,
    Question,
    Recurrence,
    Visibility,
)
from services.events.store.tables import activities
from services.kit.database import utc
from services.kit.versioned import update_versioned

# The seat and waitlist counters are not written with the plan: they change by conditional
# statements of their own (registration's store), which a plan saved from an older read
# must not undo.
_COUNTERS = ("seats_taken", "waitlist_length", "waitlist_tickets")


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *added: Activity) -> None:
        await self.session.execute(activities.insert(), [_row(activity) for activity in added])

    async def save(self, activity: Activity) -> None:
        """The plan of `activity` over the stored one a version older (StaleWrite if not)."""
        row = _row(activity)
        for name in _COUNTERS:
            row.pop(name, None)
        await update_versioned(self.session, activities, row, ["id"])

    async def get(
        self, community_id: str, activity_id: str, *, for_update: bool = False
    ) -> Activity | None:
        query = select(activities).where(
            activities.c.community_id == community_id, activities.c.id == activity_id
        )
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return activity_from_row(row) if row else None

    async def by_id(self, activity_id: str) -> Activity | None:
        row = (
            await self.session.execute(select(activities).where(activities.c.id == activity_id))
        ).first()
        return activity_from_row(row) if row else None

    async def listed(
        self,
        community_id: str,
        *,
        upcoming: bool,
        now: datetime,
        members_too: bool,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Activity]:
        """Upcoming (not ended; soonest first) or past (ended; latest first)."""
        ends = activities.c.ends_at
        query = select(activities).where(activities.c.community_id == community_id)
        if not members_too:
            query = query.where(activities.c.visibility == int(Visibility.COMMUNITY))
        if upcoming:
            query = query.where(ends > now).order_by(activities.c.start_time, activities.c.id)
            if after is not None:
                query = query.where(
                    or_(
                        activities.c.start_time > after[0],
                        and_(activities.c.start_time == after[0], activities.c.id > after[1]),
                    )
                )
        else:
            query = query.where(ends <= now).order_by(
                activities.c.start_time.desc(), activities.c.id.desc()
            )
            if after is not None:
                query = query.where(
                    or_(
                        activities.c.start_time < after[0],
                        and_(activities.c.start_time == after[0], activities.c.id < after[1]),
                    )
                )
        rows = await self.session.execute(query.limit(limit))
        return [activity_from_row(row) for row in rows]

    async def all_of(self, community_id: str, ids: Sequence[str] | None = None) -> list[Activity]:
        query = select(activities).where(activities.c.community_id == community_id)
        if ids is not None:
            query = query.where(activities.c.id.in_(list(ids)))
        rows = await self.session.execute(query.order_by(activities.c.start_time, activities.c.id))
        return [activity_from_row(row) for row in rows]

    async def organized_by(self, community_id: str, user_id: str) -> list[Activity]:
        """Activities `user_id` hosts or speaks at (speakers are a JSON list: filtered here)."""
        found = await self.all_of(community_id)
        return [activity for activity in found if activity.organized_by(user_id)]

    async def mark_cancelled(self, activity: Activity) -> None:
        """A cancelled activity holds no seats and no waitlist."""
        await self.session.execute(
            update(activities)
            .where(activities.c.id == activity.id)
            .values(seats_taken=0, waitlist_length=0)
        )


def _row(activity: Activity) -> dict[str, Any]:
    return {
        "id": activity.id,
        "community_id": activity.community_id,
        "host_user_id": activity.host_user_id,
        "kind": int(activity.kind),
        "title": activity.title,
        "description": activity.description,
        "start_time": activity.start_time,
        "end_time": activity.end_time,
        "ends_at": activity.ends_at,
        "capacity": activity.capacity,
        "location": activity.location,
        "created_at": activity.created_at,
        "version": activity.version,
        "time_zone": activity.time_zone,
        "join_url": activity.join_url,
        "speaker_user_ids": list(activity.speaker_user_ids),
        "visibility": int(activity.visibility),
        "state": int(activity.state),
        "cancel_reason": activity.cancel_reason,
        "cancelled_at": activity.cancelled_at,
        "reminder_offsets": [int(offset.total_seconds()) for offset in activity.reminder_offsets],
        "questions": [question.to_json() for question in activity.questions],
        "seat_hold_seconds": int(activity.seat_hold.total_seconds()),
        "seats_taken": activity.seats_taken,
        "waitlist_length": activity.waitlist_length,
        "check_in_code": activity.check_in_code,
        "retrospective": activity.retrospective,
        "series_id": activity.series_id,
        "recurrence": None if activity.recurrence is None else activity.recurrence.to_json(),
        "occurrence_time": activity.occurrence_time,
        "ticket_product_id": activity.ticket_product_id,
    }


def activity_from_row(row: Row[Any]) -> Activity:
    return Activity(
        id=row.id,
        community_id=row.community_id,
        host_user_id=row.host_user_id,
        kind=ActivityKind(row.kind),
        title=row.title,
        description=row.description,
        start_time=utc(row.start_time),
        end_time=utc(row.end_time) if row.end_time is not None else None,
        capacity=row.capacity,
        location=row.location,
        created_at=utc(row.created_at),
        version=row.version,
        time_zone=row.time_zone,
        join_url=row.join_url,
        speaker_user_ids=tuple(row.speaker_user_ids or ()),
        visibility=Visibility(row.visibility),
        state=ActivityState(row.state),
        cancel_reason=row.cancel_reason,
        cancelled_at=utc(row.cancelled_at) if row.cancelled_at is not None else None,
        reminder_offsets=tuple(timedelta(seconds=s) for s in row.reminder_offsets or ()),
        questions=tuple(Question.from_json(q) for q in row.questions or ()),
        seat_hold=timedelta(seconds=row.seat_hold_seconds),
        seats_taken=row.seats_taken,
        waitlist_length=row.waitlist_length,
        check_in_code=row.check_in_code,
        retrospective=row.retrospective,
        series_id=row.series_id,
        recurrence=None if row.recurrence is None else Recurrence.from_json(row.recurrence),
        occurrence_time=utc(row.occurrence_time) if row.occurrence_time is not None else None,
        ticket_product_id=row.ticket_product_id,
    )
