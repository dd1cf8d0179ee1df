"""Reminders before an activity starts, at the lead times its organizers set: one
scheduler job per activity and lead time, set when the activity is planned, moved when it
moves, removed when it is cancelled. When a job falls due, every member holding a seat gets
an ActivityReminderDue, staged in the transaction that ends the job: once, after restarts
and with several replicas (docs/decisions/0018)."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity
from services.events.activities.events import subject
from services.events.activities.store import ActivityRepository
from services.events.registration.domain import WITH_SEAT
from services.events.registration.store import RegistrationRepository
from services.events.store.outbox import OUTBOX
from services.events.store.tables import scheduled_jobs
from services.kit.errors import FailedPrecondition
from services.kit.events.outbox import Staged
from services.kit.schedule import Job, Jobs
from services.kit.timestamps import timestamp
from studyhall.events.v1 import activities_events_pb2 as events

REMIND = "remind"
JOBS = Jobs(scheduled_jobs)


def _key(activity_id: str, lead: timedelta) -> str:
    return f"{activity_id}/{int(lead.total_seconds())}"


async def plan(session: AsyncSession, activity: Activity, now: datetime) -> None:
    """A job per lead time still ahead (a reminder whose time has passed is not sent)."""
    for lead in activity.reminder_offsets:
        due = activity.start_time - lead
        if due > now:
            await JOBS.set(
                session, Job(REMIND, _key(activity.id, lead), activity.community_id, due)
            )


async def unplan(session: AsyncSession, activity: Activity) -> None:
    for lead in activity.reminder_offsets:
        await JOBS.cancel(session, REMIND, _key(activity.id, lead))


async def remind(session: AsyncSession, job: Job) -> None:
    activity_id, _, seconds = job.key.rpartition("/")
    activity = await ActivityRepository(session).get(job.community_id, activity_id)
    if activity is None or activity.cancelled:
        raise FailedPrecondition(f"activity {activity_id} is no longer scheduled")
    lead = timedelta(seconds=int(seconds))
    seated = await RegistrationRepository(session).in_states(activity.id, list(WITH_SEAT))
    duration = Duration()
    duration.FromTimedelta(lead)
    await OUTBOX.add_many(
        session,
        [
            Staged(
                events.ActivityReminderDue(
                    activity_id=activity.id,
                    community_id=activity.community_id,
                    user_id=registration.user_id,
                    registration_id=registration.id,
                    start_time=timestamp(activity.start_time),
                    lead_time=duration,
                ),
                activity.community_id,
                subject(activity),
            )
            for registration in seated
            if registration.user_id
        ],
    )
