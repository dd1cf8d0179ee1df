"""gRPC handler for calendar feeds: a community's activities, or the caller's, as
iCalendar."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from services.events.activities.lookup import sees
from services.events.activities.store import ActivityRepository
from services.events.calendar.ics import calendar
from services.events.invitations.store import InvitationRepository
from services.events.registration.store import RegistrationRepository
from services.kit.access import Access
from services.kit.auth import current_identity
from services.kit.database import Database
from studyhall.events.v1 import activities_service_pb2 as pb

# A feed holds at most this many activities, the latest planned.
MAX_ACTIVITIES = 2_000


class CalendarApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access

    async def ExportCalendar(
        self, request: pb.ExportCalendarRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportCalendarResponse:
        caller = current_identity()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activities = ActivityRepository(session)
            if request.mine:
                registered = {
                    r.activity_id
                    for r in await RegistrationRepository(session).of_member_in(
                        request.community_id, caller.user_id
                    )
                    if r.active or r.attendance
                } | await InvitationRepository(session).activities_of(
                    request.community_id, caller.user_id
                )
                found = await activities.all_of(request.community_id, list(registered))
                found += [
                    activity
                    for activity in await activities.organized_by(
                        request.community_id, caller.user_id
                    )
                    if activity.id not in registered
                ]
                # A series is shown whole: its other dates too, so its RRULE stays true.
                series = {a.series_id for a in found if a.series_id}
                if series:
                    found += [
                        a
                        for a in await activities.all_of(request.community_id)
                        if a.series_id in series and a.id not in {b.id for b in found}
                    ]
            else:
                found = await activities.all_of(request.community_id)
        shown = [a for a in found if sees(a, standing, caller)][-MAX_ACTIVITIES:]
        name = "My activities" if request.mine else "Community activities"
        return pb.ExportCalendarResponse(
            calendar=calendar(name, shown, datetime.now(UTC)), content_type="text/calendar"
        )
