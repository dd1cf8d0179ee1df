"""Wiring of the events service process: the capabilities composed into ActivitiesService."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities import data as activities_data
from services.events.activities.api import ActivitiesApi
from services.events.activities.domain import Activity
from services.events.attendance import ends
from services.events.attendance.api import AttendanceApi
from services.events.calendar.api import CalendarApi
from services.events.challenges import consumers as challenge_consumers
from services.events.challenges import data as challenges_data
from services.events.challenges.api import ChallengesApi
from services.events.feedback import data as feedback_data
from services.events.feedback.api import FeedbackApi
from services.events.invitations import data as invitations_data
from services.events.invitations.api import InvitationsApi
from services.events.registration import consumers as registration_consumers
from services.events.registration import data as registration_data
from services.events.registration import seats
from services.events.registration.api import RegistrationApi
from services.events.registration.holds import EXPIRE_HOLD, expire_hold
from services.events.registration.registering import Registering
from services.events.reminders import schedule as reminders
from services.events.settings import EventsSettings
from services.events.store.tables import access, idempotency_keys, inbox, outbox, scheduled_jobs
from services.events.tickets import consumers as ticket_consumers
from services.events.tickets import data as tickets_data
from services.events.tickets.api import TicketsApi
from services.events.tickets.store import TicketEntitlements
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.grouped_writes import GroupedWriter
from services.kit.idempotency import IdempotentWriter
from services.kit.schedule import Handler
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import load_settings
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["ActivitiesService"]
SERVICE_NAME = SERVICE.full_name

# Everything the events service holds about a member: ExportMyData, EraseMyData and
# MemberErased.
HOLDERS: tuple[DataHolder, ...] = (
    StandingData(access),
    activities_data,
    registration_data,
    feedback_data,
    challenges_data,
    invitations_data,
    tickets_data,
)


class Lifecycle:
    """What planning, moving and cancelling an activity does to the other capabilities'
    records, in the same transaction: reminders, the end-of-activity job, seats."""

    def __init__(self, wake: Callable[[], None]) -> None:
        # Wakes this process's scheduler, so work due soon runs on time.
        self.wake = wake

    async def planned(self, session: AsyncSession, made: Sequence[Activity]) -> None:
        now = datetime.now(UTC)
        for activity in made:
            await reminders.plan(session, activity, now)
            await ends.plan(session, activity)
        self.wake()

    async def changed(self, session: AsyncSession, before: Activity, after: Activity) -> None:
        now = datetime.now(UTC)
        if (before.start_time, before.reminder_offsets) != (
            after.start_time,
            after.reminder_offsets,
        ):
            await reminders.unplan(session, before)
            await reminders.plan(session, after, now)
        if before.ends_at != after.ends_at:
            await ends.plan(session, after)
        if after.capacity == 0 or after.capacity > before.capacity:
            await seats.fill_free_seats(session, after, now)
        self.wake()

    async def cancelled(self, session: AsyncSession, activity: Activity, by: str) -> None:
        await seats.cancel_all(session, activity, by, datetime.now(UTC))
        await reminders.unplan(session, activity)
        await ends.unplan(session, activity)


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    database = deps.database
    checks = Access("events", database, access, deps.redis)
    # Registrations arrive in bursts for the same activity: those that arrive together
    # commit together (docs/decisions/0011, 0027).
    idempotent = IdempotentWriter(database, idempotency_keys, on_commit=deps.notify_outbox)
    writer = GroupedWriter(idempotent)
    lifecycle = Lifecycle(_waker(deps))
    servicer = compose(
        pb_grpc.ActivitiesServiceServicer,
        SERVICE,
        ActivitiesApi(database, checks, writer, lifecycle),
        RegistrationApi(
            database,
            checks,
            writer,
            Registering(database, checks, idempotent, entitled=_entitled),
            entitled=_entitled,
        ),
        AttendanceApi(database, checks, writer),
        FeedbackApi(database, checks, writer),
        CalendarApi(database, checks),
        ChallengesApi(database, checks, writer),
        InvitationsApi(database, checks, writer, members=_members_channel(deps)),
        TicketsApi(database, checks, writer),
        DataRightsApi(database, writer, HOLDERS, pb),
    )
    pb_grpc.add_ActivitiesServiceServicer_to_server(servicer, server)


async def _entitled(
    session: AsyncSession, community_id: str, pairs: set[tuple[str, str]], now: datetime
) -> set[tuple[str, str]]:
    """Registration asks tickets who holds a paid activity's ticket."""
    return await TicketEntitlements(session).entitled(community_id, pairs, now)


def _waker(deps: Dependencies) -> Callable[[], None]:
    scheduler = deps.scheduler
    return scheduler.wake if scheduler is not None else lambda: None


def _members_channel(deps: Dependencies) -> Callable[[], grpc.aio.Channel]:
    """The members service's API, connected on first use (an activity invited to a
    segment): events starts and serves without it."""
    settings = deps.settings
    assert isinstance(settings, EventsSettings)
    channels: list[grpc.aio.Channel] = []

    def channel() -> grpc.aio.Channel:
        if not channels:
            channels.append(grpc.aio.insecure_channel(settings.members_address))
        return channels[0]

    return channel


def jobs(deps: Dependencies) -> Mapping[str, Handler]:
    return {
        EXPIRE_HOLD: expire_hold,
        reminders.REMIND: reminders.remind,
        ends.END: ends.mark_no_shows,
    }


SPEC = ServiceSpec(
    name="events",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    outbox=outbox,
    inbox=inbox,
    subscriptions=lambda deps: [
        access_subscription("events", access),
        erasure_subscription("events", HOLDERS),
        *registration_consumers.subscriptions(),
        *challenge_consumers.subscriptions(),
        *ticket_consumers.subscriptions(),
    ],
    schedule=scheduled_jobs,
    jobs=jobs,
)


def main() -> None:
    run(SPEC, load_settings(EventsSettings))
