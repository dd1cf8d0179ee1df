from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.kit.projection import upsert
from services.members.domain import (
    Community,
    JoinPolicy,
    JoinRequest,
    Membership,
    RequestState,
    Role,
    Visibility,
)
from services.members.store.tables import (
    communities,
    community_tags,
    join_requests,
    memberships,
    moderation_log,
)


class CommunityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, community: Community) -> None:
        await self.session.execute(communities.insert().values(**_community_row(community)))
        await self._write_tags(community)

    async def save(self, community: Community) -> None:
        """Store a changed community; its version must be the next one."""
        result = await self.session.execute(
            communities.update()
            .where(communities.c.id == community.id, communities.c.version == community.version - 1)
            .values(**_community_row(community))
        )
        if not getattr(result, "rowcount", 0):
            # Another writer got there first (only possible on PostgreSQL, where writers
            # do not queue); the caller's etag check saw an older row.
            raise ConcurrentChange(community.id)
        await self.session.execute(
            community_tags.delete().where(community_tags.c.community_id == community.id)
        )
        await self._write_tags(community)

    async def list_visible(
        self,
        user_id: str,
        *,
        everything: bool,
        topic: str,
        tag: str,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Community]:
        """Communities `user_id` may see, newest first, after the `after` position."""
        mine = memberships.alias("mine")
        query = (
            select(communities)
            .outerjoin(
                mine,
                and_(
                    mine.c.community_id == communities.c.id,
                    mine.c.user_id == user_id,
                    mine.c.active.is_(True),
                ),
            )
            .where(communities.c.archived_at.is_(None))
        )
        if not everything:
            query = query.where(
                or_(communities.c.visibility == int(Visibility.PUBLIC), mine.c.user_id.is_not(None))
            )
        if topic:
            query = query.where(communities.c.topic == topic)
        if tag:
            query = query.where(
                exists().where(
                    community_tags.c.community_id == communities.c.id, community_tags.c.tag == tag
                )
            )
        if after is not None:
            query = query.where(tuple_(communities.c.created_at, communities.c.id) < tuple_(*after))
        query = query.order_by(communities.c.created_at.desc(), communities.c.id.desc()).limit(
            limit
        )
        return [_community(row) for row in (await self.session.execute(query)).all()]

    async def _write_tags(self, community: Community) -> None:
        if community.tags:
            await self.session.execute(
                community_tags.insert(),
                [{"community_id": community.id, "tag": tag} for tag in community.tags],
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
        await self.save_memberships([membership])

    async def save_memberships(self, changed: list[Membership]) -> None:
        """Store memberships, new or not, with one statement."""
        rows = [_membership_row(membership) for membership in changed]
        await upsert(self.session, memberships, rows, ["community_id", "user_id"])

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
            muted_until=utc(row.muted_until) if row.muted_until else None,
            banned_until=utc(row.banned_until) if row.banned_until else None,
        )


async def log_moderation(
    session: AsyncSession,
    *,
    community_id: str,
    actor: str,
    action: str,
    target: str,
    reason: str = "",
    until: datetime | None = None,
) -> None:
    await session.execute(
        moderation_log.insert().values(
            community_id=community_id,
            actor_user_id=actor,
            action=action,
            target_user_id=target,
            reason=reason,
            until=until,
            created_at=datetime.now(UTC),
        )
    )


async def audit_entries(
    session: AsyncSession, community_id: str, *, before: int | None, limit: int
) -> list[Row[Any]]:
    """Moderation log rows of a community, newest first, below the `before` position."""
    query = select(moderation_log).where(moderation_log.c.community_id == community_id)
    if before is not None:
        query = query.where(moderation_log.c.id < before)
    query = query.order_by(moderation_log.c.id.desc()).limit(limit)
    return list((await session.execute(query)).all())


class JoinRequestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, community_id: str, user_id: str) -> JoinRequest | None:
        row = (
            await self.session.execute(
                select(join_requests).where(
                    join_requests.c.community_id == community_id,
                    join_requests.c.user_id == user_id,
                )
            )
        ).first()
        return _join_request(row) if row else None

    async def save(self, request: JoinRequest) -> None:
        values = {
            "answers": request.answers,
            "state": int(request.state),
            "created_at": request.created_at,
            "reviewer_user_id": request.reviewer_user_id,
            "reviewed_at": request.reviewed_at,
            "reason": request.reason,
        }
        result = await self.session.execute(
            join_requests.update()
            .where(
                join_requests.c.community_id == request.community_id,
                join_requests.c.user_id == request.user_id,
            )
            .values(**values)
        )
        if not getattr(result, "rowcount", 0):
            await self.session.execute(
                join_requests.insert().values(
                    community_id=request.community_id, user_id=request.user_id, **values
                )
            )

    async def pending(
        self, community_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[JoinRequest]:
        """Pending requests, oldest first: the review queue."""
        query = select(join_requests).where(
            join_requests.c.community_id == community_id,
            join_requests.c.state == int(RequestState.PENDING),
        )
        if after is not None:
            query = query.where(
                tuple_(join_requests.c.created_at, join_requests.c.user_id) > tuple_(*after)
            )
        query = query.order_by(join_requests.c.created_at, join_requests.c.user_id).limit(limit)
        return [_join_request(row) for row in (await self.session.execute(query)).all()]


def _join_request(row: Row[tuple[object, ...]]) -> JoinRequest:
    return JoinRequest(
        community_id=row.community_id,
        user_id=row.user_id,
        answers=list(row.answers),
        state=RequestState(row.state),
        created_at=utc(row.created_at),
        reviewer_user_id=row.reviewer_user_id,
        reviewed_at=utc(row.reviewed_at) if row.reviewed_at else None,
        reason=row.reason,
    )


class ConcurrentChange(Exception):
    def __init__(self, community_id: str) -> None:
        super().__init__(f"community {community_id} was changed by someone else meanwhile")


def _community_row(community: Community) -> dict[str, object]:
    return {
        "id": community.id,
        "name": community.name,
        "slug": community.slug,
        "topic": community.topic,
        "mission": community.mission,
        "audience": community.audience,
        "tags": community.tags,
        "visibility": int(community.visibility),
        "join_policy": int(community.join_policy),
        "owner_user_id": community.owner_user_id,
        "created_at": community.created_at,
        "version": community.version,
        "locale": community.locale,
        "time_zone": community.time_zone,
        "archived_at": community.archived_at,
        "join_questions": community.join_questions,
    }


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
        locale=row.locale,
        time_zone=row.time_zone,
        archived_at=utc(row.archived_at) if row.archived_at else None,
        join_questions=list(row.join_questions or []),
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
        "muted_until": membership.muted_until,
        "banned_until": membership.banned_until,
    }
