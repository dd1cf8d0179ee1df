"""The daily churn sweep of one community, run once by the kit's scheduler: judge every
member's risk on the day just ended, record and publish the changes, set the next sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.engagement import domain
from services.analytics.engagement.events import risks_changed
from services.analytics.engagement.store import EngagementRepository
from services.analytics.store.sweeps import add_sweeps, next_sweep, sweep_job
from services.kit.schedule import Job


async def sweep(session: AsyncSession, job: Job) -> None:
    community_id = job.community_id
    store = EngagementRepository(session)
    if await store.archived(community_id):
        return  # an archived community changes no more: its sweeps end
    on = (job.due_at - timedelta(days=1)).date()
    members = await store.members(community_id)
    days = await store.active_days(community_id, domain.first_day_read(on), on)
    known = await store.known_risks(community_id)
    found = domain.changes(domain.engagement(members, days, on), known, on)
    now = datetime.now(UTC)
    await store.forget(community_id, sorted(set(known) - set(members)))
    await store.record(community_id, found, on, now)
    await risks_changed(session, community_id, found, on, now)
    # The next night's sweep; a late run (the service was down) does not sweep every day
    # it missed, only from now on.
    due = max(job.due_at + timedelta(days=1), next_sweep(now))
    await add_sweeps(session, [sweep_job(community_id, due, now)])
