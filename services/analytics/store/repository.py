from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.domain import CommunityStats
from services.analytics.store.tables import community_stats, member_states
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

    async def touch(self, community_id: str) -> None:
        """Note that an event changed this community's figures now."""
        now = datetime.now(UTC)
        insert = _insert_for(self.session)
        await self.session.execute(
            insert(community_stats)
            .values(community_id=community_id, updated_at=now)
            .on_conflict_do_update(index_elements=["community_id"], set_={"updated_at": now})
        )

    async def set_member_state(
        self, community_id: str, user_id: str, *, active: bool, version: int
    ) -> bool:
        """Record a membership state unless a newer one is known; True when it changed."""
        insert = _insert_for(self.session)
        statement = insert(member_states).values(
            community_id=community_id, user_id=user_id, active=active, version=version
        )
        result = await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["community_id", "user_id"],
                set_={"active": statement.excluded.active, "version": statement.excluded.version},
                where=member_states.c.version < statement.excluded.version,
            )
        )
        return bool(getattr(result, "rowcount", 0))


def _insert_for(session: AsyncSession) -> Any:
    # Both dialects speak INSERT ... ON CONFLICT; SQLAlchemy has one construct per dialect.
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert
