"""gRPC handlers for activities: planning (one or a series), reading, changing, cancelling
and listing a community's calendar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities import domain
from services.events.activities.events import ActivityEvents
from services.events.activities.lookup import (
    organized_activity,
    visible_activity,
)
from services.events.activities.messages import read_fields, to_proto
from services.events.activities.store import ActivityRepository
from services.kit.access import Access
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import PermissionDenied
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb

_CREATE_FIELDS = [
    "title",
    "description",
    "start_time",
    "end_time",
    "time_zone",
    "capacity",
    "location",
    "join_url",
    "speaker_user_ids",
    "visibility",
    "reminder_offsets",
    "questions",
    "seat_hold",
]


class Lifecycle(Protocol):
    """What other capabilities do when an activity is planned, changed or cancelled, in
    the same transaction (reminders, the end-of-activity job, seats): the app hands it in."""

    async def planned(self, session: AsyncSession, made: Sequence[domain.Activity]) -> None: ...

    async def changed(
        self, session: AsyncSession, before: domain.Activity, after: domain.Activity
    ) -> None: ...

    async def cancelled(
        self, session: AsyncSession, activity: domain.Activity, by: str
    ) -> None: ...


class ActivitiesApi:
    def __init__(
        self, database: Database, access: Access, writer: Writer, lifecycle: Lifecycle
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        self.lifecycle = lifecycle

    async def CreateActivity(
        self, request: pb.CreateActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateActivityResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("kind", request.kind, domain.ActivityKind, "ActivityKind", required=True)
        values = read_fields(problems, request, _CREATE_FIELDS)
        rule = None
        if request.HasField("recurrence"):
            rule = _recurrence(problems, request.recurrence)
        now = datetime.now(UTC)
        first = None
        if request.kind in domain.ActivityKind._value2member_map_ and values["start_time"]:
            first = domain.new_activity(
                community_id=request.community_id,
                host_user_id=caller.user_id,
                kind=domain.ActivityKind(request.kind),
                now=now,
                **values,
            )
            for name, problem in domain.plan_problems(first, now).items():
                problems.add(name, problem)
        problems.raise_if_any()
        assert first is not None
        # Moderators schedule; so do members at a level that unlocks create_activities.
        standing = await self.access.require_privilege(
            request.community_id,
            caller,
            "create_activities",
            "scheduling an activity",
            open_until_gated=False,
        )
        if standing.muted() and not caller.operator:
            raise PermissionDenied(
                f"you are muted in community {request.community_id}: scheduling an activity "
                "waits until the mute ends"
            )
        await self.access.require_writable(request.community_id, caller, "scheduling an activity")
        if not first.time_zone:
            # The community's zone, fixed at planning: a series keeps its local time.
            named = await self.access.time_zone(request.community_id)
            first = replace(first, time_zone=named if named and domain.zone(named) else "UTC")
        made = [first] if rule is None else domain.occurrences(first, rule)
        if rule is not None:
            domain.check_plan(made[-1], now)

        async def create(session: AsyncSession) -> pb.CreateActivityResponse:
            await ActivityRepository(session).add(*made)
            await ActivityEvents(session).created(made)
            await self.lifecycle.planned(session, made)
            return pb.CreateActivityResponse(
                activity=to_proto(made[0]),
                occurrences=[to_proto(activity) for activity in made] if rule else [],
            )

        return await self.writer.write(caller.user_id, request, pb.CreateActivityResponse, create)

    async def GetActivity(
        self, request: pb.GetActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetActivityResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
        return pb.GetActivityResponse(activity=to_proto(activity))

    async def UpdateActivity(
        self, request: pb.UpdateActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateActivityResponse:
        caller = current_identity()
        paths = sorted(set(request.update_mask.paths))
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        if not paths:
            problems.add("update_mask", "name at least one field to change")
        for path in paths:
            if path not in domain.UPDATABLE:
                problems.add("update_mask", f"{path!r} cannot be changed; use {domain.UPDATABLE}")
        changes = read_fields(
            problems, request.activity, [p for p in paths if p in domain.UPDATABLE], "activity."
        )
        problems.raise_if_any()
        if "time_zone" in changes and not changes["time_zone"]:
            changes["time_zone"] = "UTC"
        standing = await self.access.require_writable(
            request.community_id, caller, "changing an activity"
        )

        async def edit(session: AsyncSession) -> pb.UpdateActivityResponse:
            activity = await organized_activity(
                session,
                request.community_id,
                request.activity_id,
                standing,
                caller,
                "changing an activity",
            )
            now = datetime.now(UTC)
            edited, changed = domain.edit(activity, changes, request.etag, now)
            if changed:
                await ActivityRepository(session).save(edited)
                await ActivityEvents(session).updated(edited, changed, caller.user_id, now)
                await self.lifecycle.changed(session, activity, edited)
                edited = await _fresh(session, edited)
            return pb.UpdateActivityResponse(activity=to_proto(edited))

        return await self.writer.write(caller.user_id, request, pb.UpdateActivityResponse, edit)

    async def CancelActivity(
        self, request: pb.CancelActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelActivityResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.text("reason", request.reason, max_length=domain.REASON_MAX)
        problems.raise_if_any()
        standing = await self.access.require_writable(
            request.community_id, caller, "cancelling an activity"
        )

        async def cancel(session: AsyncSession) -> pb.CancelActivityResponse:
            activity = await organized_activity(
                session,
                request.community_id,
                request.activity_id,
                standing,
                caller,
                "cancelling an activity",
            )
            cancelled = domain.cancel(activity, request.reason, datetime.now(UTC))
            repository = ActivityRepository(session)
            await repository.save(cancelled)
            await repository.mark_cancelled(cancelled)
            await ActivityEvents(session).cancelled(cancelled, caller.user_id)
            await self.lifecycle.cancelled(session, cancelled, caller.user_id)
            return pb.CancelActivityResponse(activity=to_proto(cancelled))

        return await self.writer.write(caller.user_id, request, pb.CancelActivityResponse, cancel)

    async def ListActivities(
        self, request: pb.ListActivitiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListActivitiesResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("period", request.period, pb.ActivityPeriod.values(), "ActivityPeriod")
        past = request.period == pb.ACTIVITY_PERIOD_PAST
        page = read_page(problems, request, ["activities", request.community_id, str(int(past))])
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            found = await ActivityRepository(session).listed(
                request.community_id,
                upcoming=not past,
                now=datetime.now(UTC),
                members_too=caller.operator or standing.role is not None,
                after=page.after,
                limit=page.size + 1,
            )
        listed, token = page_of(found, page, lambda a: (a.start_time, a.id))
        return pb.ListActivitiesResponse(
            activities=[to_proto(activity) for activity in listed], next_page_token=token
        )


def _recurrence(problems: Violations, rule: Any) -> domain.Recurrence | None:
    problems.enum(
        "recurrence.frequency",
        rule.frequency,
        domain.Frequency,
        "RecurrenceFrequency",
        required=True,
    )
    if not domain.SERIES_MIN <= rule.count <= domain.SERIES_MAX:
        problems.add(
            "recurrence.count", f"must be {domain.SERIES_MIN} to {domain.SERIES_MAX} occurrences"
        )
    if rule.frequency not in {int(f) for f in domain.Frequency}:
        return None
    return domain.Recurrence(domain.Frequency(rule.frequency), rule.count)


async def _fresh(session: AsyncSession, activity: domain.Activity) -> domain.Activity:
    """The activity with the counters another capability may just have changed."""
    found = await ActivityRepository(session).get(activity.community_id, activity.id)
    return found or activity
