"""gRPC edge of the events service: decode, validate, authorize, call, encode."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from services.events import domain
from services.events.store.repository import ActivityRepository
from services.events.store.tables import idempotency_keys
from services.kit.access import Access
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import NotFound
from services.kit.idempotency import IdempotentWriter
from services.kit.timestamps import timestamp, timestamp_or_none
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ActivitiesService"].full_name


class ActivitiesApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access
        self.writer = IdempotentWriter(database, idempotency_keys)

    async def CreateActivity(
        self, request: pb.CreateActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateActivityResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("kind", request.kind, domain.ActivityKind, "ActivityKind", required=True)
        problems.text("title", request.title, max_length=domain.TITLE_MAX)
        problems.text(
            "description", request.description, required=False, max_length=domain.DESCRIPTION_MAX
        )
        start_time = _time(problems, "start_time", request, required=True)
        end_time = _time(problems, "end_time", request, required=False)
        if start_time is not None and not domain.ends_after_start(start_time, end_time):
            problems.add("end_time", "must be after start_time")
        if request.capacity < 0:
            problems.add("capacity", "must be zero (unlimited) or more")
        problems.text(
            "location",
            request.location,
            required=int(request.kind) in domain.KINDS_WITH_LOCATION,
            max_length=domain.LOCATION_MAX,
        )
        problems.raise_if_any()
        # Moderators schedule; so do members at a level that unlocks create_activities.
        await self.access.require_privilege(
            request.community_id,
            caller,
            "create_activities",
            "scheduling an activity",
            open_until_gated=False,
        )
        await self.access.require_writable(request.community_id, caller, "scheduling an activity")
        assert start_time is not None

        async def create(session: AsyncSession) -> pb.CreateActivityResponse:
            activity = domain.new_activity(
                community_id=request.community_id,
                host_user_id=caller.user_id,
                kind=domain.ActivityKind(request.kind),
                title=request.title,
                start_time=start_time,
                end_time=end_time,
                description=request.description,
                capacity=request.capacity,
                location=request.location,
            )
            await ActivityRepository(session).add(activity)
            return pb.CreateActivityResponse(activity=_to_proto(activity))

        return await self.writer.write(caller.user_id, request, pb.CreateActivityResponse, create)

    async def GetActivity(
        self, request: pb.GetActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetActivityResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.raise_if_any()
        await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activity = await ActivityRepository(session).get(
                request.community_id, request.activity_id
            )
        if activity is None:
            # Looked up within the community: another community's activity is simply not found.
            raise NotFound(
                f"activity {request.activity_id} not found in community {request.community_id}"
            )
        return pb.GetActivityResponse(activity=_to_proto(activity))


def _time(
    problems: Violations,
    field: Literal["start_time", "end_time"],
    request: pb.CreateActivityRequest,
    *,
    required: bool,
) -> datetime | None:
    if not request.HasField(field):
        if required:
            problems.add(field, "is required")
        return None
    stamp: Timestamp = getattr(request, field)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except ValueError:
        problems.add(field, "must be a valid timestamp between years 1 and 9999")
        return None


def _to_proto(activity: domain.Activity) -> pb.Activity:
    return pb.Activity(
        id=activity.id,
        community_id=activity.community_id,
        host_user_id=activity.host_user_id,
        kind=pb.ActivityKind.ValueType(activity.kind),
        title=activity.title,
        description=activity.description,
        start_time=timestamp(activity.start_time),
        end_time=timestamp_or_none(activity.end_time),
        capacity=activity.capacity,
        location=activity.location,
        create_time=timestamp(activity.created_at),
        version=activity.version,
    )
