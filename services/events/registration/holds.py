"""The end of a held seat: the handler of the scheduler's "expire_hold" jobs, run once in
the transaction that ends the job."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.store import ActivityRepository
from services.events.registration import seats
from services.events.registration.domain import CancelReason, RegistrationState
from services.events.registration.store import RegistrationRepository
from services.kit.errors import FailedPrecondition
from services.kit.schedule import Job

EXPIRE_HOLD = seats.EXPIRE_HOLD


async def expire_hold(session: AsyncSession, job: Job) -> None:
    registration = await RegistrationRepository(session).by_id(job.key, for_update=True)
    if registration is None or registration.state is not RegistrationState.HELD:
        raise FailedPrecondition(f"registration {job.key} holds no seat any more")
    activity = await ActivityRepository(session).get(
        registration.community_id, registration.activity_id, for_update=True
    )
    if activity is None:
        raise FailedPrecondition(f"activity {registration.activity_id} is gone")
    # The seat moves on to the next waiting member.
    await seats.cancel(
        session, activity, registration, CancelReason.HOLD_EXPIRED, "", datetime.now(UTC)
    )
