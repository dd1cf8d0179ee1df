from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.domain import CommunityStats
from services.analytics.store.tables import community_stats, member_states
from services.kit.database import utc
from services.kit.projection import upsert, upsert_newer


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, community_id: str) -> CommunityStats | None:
        row = (
            await self.session.execute(
                select(community_stats).where(community_stats.c.community_id == community_id)
            )
        ).first()
        if row is None:
            return None
        members = await self.session.scalar(
            select(func.count()).where(
                member_states.c.community_id == community_id, member_states.c.active.is_(True)
            )
        )
        return CommunityStats(
            community_id=row.community_id,
            member_count=int(members or 0),
            post_count=int(row.post_count),
            activity_count=int(row.activity_count),
            product_count=int(row.product_count),
            updated_at=utc(row.updated_at) if row.updated_at is not None else None,
        )

    async def touch(self, community_ids: set[str]) -> None:
        """Note that events changed these communities' figures now."""
        now = datetime.now(UTC)
        rows = [{"community_id": community_id, "updated_at": now} for community_id in community_ids]
        await upsert(self.session, community_stats, rows, ["community_id"])

    async def set_member_states(self, states: list[dict[str, Any]]) -> None:
        """Record membership states (community_id, user_id, active, version) unless newer
        ones are known."""
        await upsert_newer(self.session, member_states, states, ["community_id", "user_id"])
