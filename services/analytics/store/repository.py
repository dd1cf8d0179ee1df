from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.domain import CommunityStats
from services.analytics.store.tables import community_stats
from services.kit.database import utc


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
        return CommunityStats(
            community_id=row.community_id,
            member_count=int(row.member_count),
            post_count=int(row.post_count),
            activity_count=int(row.activity_count),
            product_count=int(row.product_count),
            updated_at=utc(row.updated_at) if row.updated_at is not None else None,
        )
