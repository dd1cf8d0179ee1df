"""The daily churn sweep of each community, as jobs of the kit's scheduler (decision 0018):
one job per community and day (key "<community>/<day>"), the first set when an event about
the community arrives, each next one set by the sweep before it
(services/analytics/engagement/sweep.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.store.tables import scheduled_jobs
from services.kit.database import insert_for

CHURN_SWEEP = "churn_sweep"
# Shortly after midnight UTC, when the day just ended is complete.
SWEEP_TIME = time(0, 30, tzinfo=UTC)


def next_sweep(now: datetime) -> datetime:
    """The next sweep time after `now`."""
    today = datetime.combine(now.astimezone(UTC).date(), SWEEP_TIME)
    return today if today > now else today + timedelta(days=1)


def sweep_job(community_id: str, due_at: datetime, now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "kind": CHURN_SWEEP,
        "key": f"{community_id}/{due_at.date().isoformat()}",
        "community_id": community_id,
        "due_at": due_at,
        "created_at": now,
    }


async def ensure_sweeps(session: AsyncSession, community_ids: Sequence[str]) -> None:
    """A sweep job for each community that has none."""
    if not community_ids:
        return
    have = set(
        await session.scalars(
            select(scheduled_jobs.c.community_id).where(
                scheduled_jobs.c.kind == CHURN_SWEEP,
                scheduled_jobs.c.community_id.in_(community_ids),
            )
        )
    )
    now = datetime.now(UTC)
    missing = [sweep_job(c, next_sweep(now), now) for c in community_ids if c not in have]
    await add_sweeps(session, missing)


async def add_sweeps(session: AsyncSession, jobs: list[dict[str, Any]]) -> None:
    """Insert sweep jobs; one of the same community and day already there stays (two
    consumers' batches may reach a new community at once)."""
    if not jobs:
        return
    dialect = session.get_bind().dialect.name
    insert: Any = insert_for(dialect)
    await session.execute(
        insert(scheduled_jobs).values(jobs).on_conflict_do_nothing(index_elements=["kind", "key"])
    )
