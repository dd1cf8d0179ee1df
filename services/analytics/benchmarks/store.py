"""The figures of a community and of its peers (the communities of its topic), read in a
few grouped statements whatever the number of peers."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.benchmarks.domain import Figures
from services.analytics.store.tables import (
    community_topics,
    daily_counts,
    member_days,
    member_states,
)


class BenchmarkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def topic(self, community_id: str) -> str:
        found = await self.session.scalar(
            select(community_topics.c.topic).where(community_topics.c.community_id == community_id)
        )
        return found or ""

    async def communities_of(self, topic: str) -> list[str]:
        rows = await self.session.scalars(
            select(community_topics.c.community_id).where(community_topics.c.topic == topic)
        )
        return list(rows)

    async def figures(
        self, community_ids: Collection[str], first: date, last: date
    ) -> dict[str, Figures]:
        ids = list(community_ids)
        values: dict[str, dict[str, int]] = {c: {} for c in ids}
        members = await self.session.execute(
            select(member_states.c.community_id, func.count())
            .where(member_states.c.community_id.in_(ids), member_states.c.active.is_(True))
            .group_by(member_states.c.community_id)
        )
        for community_id, n in members:
            values[community_id]["members"] = int(n)
        active = await self.session.execute(
            select(
                member_days.c.community_id,
                func.count(distinct(member_days.c.user_id)),
                func.count(),
            )
            .where(
                member_days.c.community_id.in_(ids),
                member_days.c.day >= first,
                member_days.c.day <= last,
            )
            .group_by(member_days.c.community_id)
        )
        for community_id, people, days in active:
            values[community_id]["active"] = int(people)
            values[community_id]["active_days"] = int(days)
        counted = await self.session.execute(
            select(
                daily_counts.c.community_id, daily_counts.c.measure, func.sum(daily_counts.c.value)
            )
            .where(
                daily_counts.c.community_id.in_(ids),
                daily_counts.c.day >= first,
                daily_counts.c.day <= last,
                daily_counts.c.measure.in_(("posts", "joined", "left")),
            )
            .group_by(daily_counts.c.community_id, daily_counts.c.measure)
        )
        for community_id, measure, total in counted:
            values[community_id][measure] = int(total or 0)
        return {c: Figures(**v) for c, v in values.items()}
