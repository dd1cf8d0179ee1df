from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.members.domain import Community, JoinPolicy, Membership, Role, Visibility
from services.members.store.tables import communities, memberships


class CommunityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, community: Community) -> None:
        await self.session.execute(
            communities.insert().values(
                id=community.id,
                name=community.name,
                slug=community.slug,
                topic=community.topic,
                mission=community.mission,
                audience=community.audience,
                tags=community.tags,
                visibility=int(community.visibility),
                join_policy=int(community.join_policy),
                owner_user_id=community.owner_user_id,
                created_at=community.created_at,
                version=community.version,
            )
        )

    async def get(self, community_id: str) -> Community | None:
        row = (
            await self.session.execute(select(communities).where(communities.c.id == community_id))
        ).first()
        return _community(row) if row else None

    async def slug_taken(self, slug: str) -> bool:
        found = await self.session.scalar(
            select(communities.c.id).where(communities.c.slug == slug)
        )
        return found is not None

    async def add_membership(self, membership: Membership) -> None:
        await self.session.execute(memberships.insert().values(**_membership_row(membership)))

    async def save_membership(self, membership: Membership) -> None:
        """Store a membership that may exist already (a rejoin, a leave)."""
        row = _membership_row(membership)
        result = await self.session.execute(
            memberships.update()
            .where(
                memberships.c.community_id == membership.community_id,
                memberships.c.user_id == membership.user_id,
            )
            .values(**row)
        )
        if not getattr(result, "rowcount", 0):
            await self.session.execute(memberships.insert().values(**row))

    async def membership(self, community_id: str, user_id: str) -> Membership | None:
        row = (
            await self.session.execute(
                select(memberships).where(
                    memberships.c.community_id == community_id, memberships.c.user_id == user_id
                )
            )
        ).first()
        if row is None:
            return None
        return Membership(
            community_id=row.community_id,
            user_id=row.user_id,
            role=Role(row.role),
            joined_at=utc(row.joined_at),
            active=row.active,
            version=row.version,
            left_at=utc(row.left_at) if row.left_at else None,
        )


def _community(row: Row[tuple[object, ...]]) -> Community:
    return Community(
        id=row.id,
        name=row.name,
        slug=row.slug,
        topic=row.topic,
        mission=row.mission,
        audience=row.audience,
        tags=list(row.tags),
        visibility=Visibility(row.visibility),
        join_policy=JoinPolicy(row.join_policy),
        owner_user_id=row.owner_user_id,
        created_at=utc(row.created_at),
        version=row.version,
    )


def _membership_row(membership: Membership) -> dict[str, object]:
    return {
        "community_id": membership.community_id,
        "user_id": membership.user_id,
        "role": int(membership.role),
        "joined_at": membership.joined_at,
        "active": membership.active,
        "version": membership.version,
        "left_at": membership.left_at,
    }
