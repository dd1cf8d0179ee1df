"""gRPC handlers for registration: registering, cancelling, confirming a held seat, the
organizers' list, and a member's own activities."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.lookup import require_organizer, sees, visible_activity
from services.events.activities.messages import to_proto
from services.events.activities.store import ActivityRepository
from services.events.invitations.store import InvitationRepository
from services.events.registration import seats
from services.events.registration.domain import CancelReason
from services.events.registration.messages import registration_to_proto
from services.events.registration.registering import (
    Entitled,
    RegisterCommand,
    Registering,
    nobody_entitled,
)
from services.events.registration.store import RegistrationRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb


class RegistrationApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        registering: Registering,
        entitled: Entitled = nobody_entitled,
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        self.registering = registering
        # Who holds a paid activity's ticket (the tickets capability, handed in by the app).
        self.entitled = entitled

    async def Register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        answers: dict[str, str] = {}
        for index, answer in enumerate(request.answers):
            if answer.question_id in answers:
                problems.add(f"answers[{index}]", f"{answer.question_id!r:.60} is answered twice")
            answers[answer.question_id] = answer.text
        problems.raise_if_any()
        # Registrations for one activity arrive in bursts: they commit in groups, which
        # also check the callers' standing (a member, in a community not archived).
        return await self.registering.register(RegisterCommand.of(caller, request, answers))

    async def CancelRegistration(
        self, request: pb.CancelRegistrationRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelRegistrationResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.raise_if_any()
        whose = request.user_id or caller.user_id
        standing = await self.access.require_writable(
            request.community_id, caller, "cancelling a registration"
        )

        async def cancel(session: AsyncSession) -> pb.CancelRegistrationResponse:
            activity = await visible_activity(
                session,
                request.community_id,
                request.activity_id,
                standing,
                caller,
                for_update=True,
            )
            by_organizer = whose != caller.user_id
            if by_organizer:
                require_organizer(activity, standing, caller, "cancelling another's registration")
            registration = await RegistrationRepository(session).of_member(
                activity.id, whose, for_update=True
            )
            if registration is None or not registration.active:
                raise NotFound(f"{whose} has no registration for activity {activity.id}")
            reason = CancelReason.BY_ORGANIZER if by_organizer else CancelReason.BY_MEMBER
            ended = await seats.cancel(
                session, activity, registration, reason, caller.user_id, datetime.now(UTC)
            )
            return pb.CancelRegistrationResponse(registration=registration_to_proto(ended))

        return await self.writer.write(
            caller.user_id, request, pb.CancelRegistrationResponse, cancel
        )

    async def ConfirmSeat(
        self, request: pb.ConfirmSeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.ConfirmSeatResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.raise_if_any()
        standing = await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "confirming a seat", writable=True
        )

        async def confirm(session: AsyncSession) -> pb.ConfirmSeatResponse:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
            registration = await RegistrationRepository(session).of_member(
                activity.id, caller.user_id, for_update=True
            )
            if registration is None:
                raise NotFound(f"you have no registration for activity {activity.id}")
            now = datetime.now(UTC)
            if activity.paid:
                ticket = (caller.user_id, activity.ticket_product_id)
                if ticket not in await self.entitled(session, activity.community_id, {ticket}, now):
                    raise FailedPrecondition(
                        f"a seat at activity {activity.id} is confirmed by buying its ticket "
                        f"(product {activity.ticket_product_id})"
                    )
            seat = await seats.confirm(session, registration, now)
            return pb.ConfirmSeatResponse(registration=registration_to_proto(seat))

        return await self.writer.write(caller.user_id, request, pb.ConfirmSeatResponse, confirm)

    async def ListRegistrations(
        self, request: pb.ListRegistrationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRegistrationsResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        page = read_page(problems, request, ["registrations", request.activity_id])
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
            require_organizer(activity, standing, caller, "reading an activity's registrations")
            repository = RegistrationRepository(session)
            found = await repository.listed(activity.id, page.after, page.size + 1)
            listed, token = page_of(found, page, lambda r: (r.registered_at, r.id))
            shown = [
                registration_to_proto(r, await repository.waitlist_position(r)) for r in listed
            ]
        return pb.ListRegistrationsResponse(registrations=shown, next_page_token=token)

    async def ListMyActivities(
        self, request: pb.ListMyActivitiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMyActivitiesResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["mine", request.community_id, caller.user_id])
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activities = ActivityRepository(session)
            registrations = RegistrationRepository(session)
            mine = {
                r.activity_id: r
                for r in await registrations.of_member_in(request.community_id, caller.user_id)
                if r.active or r.attendance
            }
            invited = await InvitationRepository(session).activities_of(
                request.community_id, caller.user_id
            )
            found = {
                a.id: a
                for a in await activities.all_of(request.community_id, list(set(mine) | invited))
            }
            for activity in await activities.organized_by(request.community_id, caller.user_id):
                found[activity.id] = activity
            ordered = sorted(
                (a for a in found.values() if sees(a, standing, caller)),
                key=lambda a: (a.start_time, a.id),
            )
            if page.after is not None:
                after = page.after
                ordered = [a for a in ordered if (a.start_time, a.id) > after]
            listed, token = page_of(ordered[: page.size + 1], page, lambda a: (a.start_time, a.id))
            entries = []
            for activity in listed:
                registration = mine.get(activity.id)
                position = (
                    await registrations.waitlist_position(registration) if registration else 0
                )
                entries.append(
                    pb.MyActivity(
                        activity=to_proto(activity),
                        registration=(
                            registration_to_proto(registration, position) if registration else None
                        ),
                        organizing=activity.organized_by(caller.user_id),
                        invited=activity.id in invited,
                    )
                )
        return pb.ListMyActivitiesResponse(activities=entries, next_page_token=token)
