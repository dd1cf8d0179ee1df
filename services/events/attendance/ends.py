"""The end of an activity: registered members who did not check in are no-shows. One
scheduler job per activity at its end, moved when the activity moves, removed when it is
cancelled; the handler of its "end_activity" jobs."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity
from services.events.activities.store import ActivityRepository
from services.events.registration import domain
from services.events.registration.events import RegistrationEvents
from services.events.registration.store import RegistrationRepository
from services.events.store.tables import scheduled_jobs
from services.kit.errors import FailedPrecondition
from services.kit.schedule import Job, Jobs

END = "end_activity"
JOBS = Jobs(scheduled_jobs)


async def plan(session: AsyncSession, activity: Activity) -> None:
    await JOBS.set(session, Job(END, activity.id, activity.community_id, activity.ends_at))


async def unplan(session: AsyncSession, activity: Activity) -> None:
    await JOBS.cancel(session, END, activity.id)


async def mark_no_shows(session: AsyncSession, job: Job) -> None:
    activity = await ActivityRepository(session).get(job.community_id, job.key, for_update=True)
    if activity is None or activity.cancelled:
        raise FailedPrecondition(f"activity {job.key} is no longer scheduled")
    now = datetime.now(UTC)
    repository = RegistrationRepository(session)
    events = RegistrationEvents(session)
    for registration in await repository.in_states(activity.id, list(domain.WITH_SEAT)):
        if registration.attendance is not domain.Attendance.UNKNOWN:
            continue
        missed = domain.no_show(registration, now)
        await repository.save(missed)
        await events.no_show(missed, now)
