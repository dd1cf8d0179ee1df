"""Registering, giving up a seat and the waitlist's promotions: use cases that take a
session (the caller's transaction) and keep the counters, the rows and the facts together.

A free seat and a waitlist never exist together: each seat freed (a cancellation, an
expired hold, a raised capacity) goes to the first waiting member at once, held for them
until they confirm or the hold ends (a scheduler job), and then moves on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity
from services.events.activities.store import ActivityRepository
from services.events.registration import domain
from services.events.registration.domain import CancelReason, Registration, RegistrationState
from services.events.registration.events import RegistrationEvents
from services.events.registration.store import RegistrationRepository, Seats
from services.events.store.tables import scheduled_jobs
from services.kit.schedule import Job, Jobs

JOBS = Jobs(scheduled_jobs)
EXPIRE_HOLD = domain.EXPIRE_HOLD


async def cancel(
    session: AsyncSession,
    activity: Activity,
    registration: Registration,
    reason: CancelReason,
    by: str,
    now: datetime,
) -> Registration:
    """Gives up a seat, a held seat or a place; a freed seat goes to the next waiting."""
    was = registration.state
    ended = domain.cancelled(registration, now)
    await RegistrationRepository(session).save(ended)
    await RegistrationEvents(session).cancelled(ended, reason, by, activity.ticket_product_id)
    seats = Seats(session)
    if was is RegistrationState.HELD:
        await JOBS.cancel(session, EXPIRE_HOLD, registration.id)
    if was in domain.WITH_SEAT:
        await seats.release(activity.id)
        await fill_free_seats(session, activity, now)
    elif was is RegistrationState.WAITLISTED:
        await seats.leave_waitlist(activity.id)
    return ended


async def fill_free_seats(session: AsyncSession, activity: Activity, now: datetime) -> int:
    """Promotes waiting members, first come first, while seats are free; how many."""
    repository = RegistrationRepository(session)
    seats = Seats(session)
    events = RegistrationEvents(session)
    promoted = 0
    while True:
        waiting = await repository.next_waiting(activity.id)
        if waiting is None or not await seats.promote_one(activity.id):
            return promoted
        until = now + activity.seat_hold
        hold = domain.held(waiting, until, now)
        await repository.save(hold)
        await JOBS.set(session, Job(EXPIRE_HOLD, hold.id, hold.community_id, until))
        await events.promoted(hold)
        promoted += 1


async def confirm(session: AsyncSession, registration: Registration, now: datetime) -> Registration:
    seat = domain.confirmed(registration, now)
    await RegistrationRepository(session).save(seat)
    await JOBS.cancel(session, EXPIRE_HOLD, registration.id)
    await RegistrationEvents(session).registered(seat)
    return seat


async def member_left(
    session: AsyncSession, community_id: str, user_id: str, left_at: datetime, now: datetime
) -> int:
    """The member left the community (or was removed or banned): their registrations made
    before they left, in activities still ahead, are cancelled and the seats move on. One
    made after the leave (they joined again) stays. How many were cancelled."""
    repository = RegistrationRepository(session)
    activities = ActivityRepository(session)
    ended = 0
    for activity_id, _ in await repository.upcoming_of_member(community_id, user_id, left_at, now):
        # The activity's row first, as every registration change locks it (seats).
        activity = await activities.get(community_id, activity_id, for_update=True)
        registration = await repository.of_member(activity_id, user_id, for_update=True)
        if activity is None or registration is None or not registration.active:
            continue
        await cancel(session, activity, registration, CancelReason.MEMBER_LEFT, "", now)
        ended += 1
    return ended


async def cancel_all(session: AsyncSession, activity: Activity, by: str, now: datetime) -> None:
    """The activity was cancelled: so is every registration it had."""
    repository = RegistrationRepository(session)
    events = RegistrationEvents(session)
    for registration in await repository.in_states(activity.id, list(domain.ACTIVE)):
        ended = domain.cancelled(registration, now)
        await repository.save(ended)
        await events.cancelled(
            ended, CancelReason.ACTIVITY_CANCELLED, by, activity.ticket_product_id
        )
        if registration.state is RegistrationState.HELD:
            await JOBS.cancel(session, EXPIRE_HOLD, registration.id)
