"""gRPC handlers for attendance: the venue's check-in code and checking in, by the code or
by an organizer."""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity
from services.events.activities.lookup import require_organizer, visible_activity
from services.events.registration import domain
from services.events.registration.events import RegistrationEvents
from services.events.registration.messages import registration_to_proto
from services.events.registration.store import RegistrationRepository, Seats
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.grouped_writes import Writer
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb


class AttendanceApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def GetCheckInCode(
        self, request: pb.GetCheckInCodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCheckInCodeResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
        require_organizer(activity, standing, caller, "reading the check-in code")
        return pb.GetCheckInCodeResponse(code=activity.check_in_code, activity_id=activity.id)

    async def CheckIn(
        self, request: pb.CheckInRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckInResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        if bool(request.code) == bool(request.user_id):
            problems.add("code", "give the code shown at the venue, or (organizers) a user_id")
        problems.raise_if_any()
        by_code = bool(request.code)
        if by_code:
            standing = await self.access.require_role(
                request.community_id, caller, Role.MEMBER, "checking in", writable=True
            )
        else:
            standing = await self.access.require_writable(
                request.community_id, caller, "checking a member in"
            )
        whose = caller.user_id if by_code else request.user_id

        async def check_in(session: AsyncSession) -> pb.CheckInResponse:
            activity = await visible_activity(
                session,
                request.community_id,
                request.activity_id,
                standing,
                caller,
                for_update=True,
            )
            if by_code:
                if not hmac.compare_digest(request.code.upper(), activity.check_in_code):
                    raise InvalidArgument.field("code", "is not this activity's check-in code")
            else:
                require_organizer(activity, standing, caller, "checking a member in")
            now = datetime.now(UTC)
            domain.check_in_window(activity, now)
            repository = RegistrationRepository(session)
            registration = await repository.of_member(activity.id, whose, for_update=True)
            if registration is None or not registration.seated:
                if by_code:
                    raise FailedPrecondition(
                        f"you hold no seat at activity {activity.id}; ask an organizer"
                    )
                # A walk-in an organizer admits gets a registration and a seat.
                registration = await _walk_in(session, activity, registration, whose, now)
            present = domain.attended(registration, now)
            await repository.save(present)
            await RegistrationEvents(session).attended(present, "" if by_code else caller.user_id)
            return pb.CheckInResponse(registration=registration_to_proto(present))

        return await self.writer.write(caller.user_id, request, pb.CheckInResponse, check_in)


async def _walk_in(
    session: AsyncSession,
    activity: Activity,
    existing: domain.Registration | None,
    user_id: str,
    now: datetime,
) -> domain.Registration:
    """The registration of a member an organizer admits without a seat: a seat if one is
    free (their place on the waitlist given up for it). Not saved: attendance saves it."""
    seats = Seats(session)
    if existing is not None and existing.state is domain.RegistrationState.WAITLISTED:
        await seats.leave_waitlist(activity.id)
        existing = replace(existing, state=domain.RegistrationState.CANCELLED)
    if not await seats.take(activity.id):
        raise FailedPrecondition(f"activity {activity.id} is full; no seat for {user_id}")
    return domain.registration_for(existing, activity, user_id, {}, now)
