from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Table, and_, bindparam, case, exists, or_, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.kit.versioned import StaleWrite, save_versioned
from services.members.communities.domain import (
    Community,
    JoinPolicy,
    JoinRequest,
    Membership,
    RequestState,
    Role,
    Rule,
    RulesVersion,
    Visibility,
)
from services.members.communities.invites import Invite
from services.members.store.tables import (
    communities,
    community_rules,
    community_tags,
    invites,
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
            # do not queue): the transaction runs again, and an etag checks the fresh row.
            raise StaleWrite(f"community {community.id} changed meanwhile")
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

    async def hold(self, community_id: str) -> None:
        """Hold the community's row until the transaction ends, so that changes to settings
        replaced as a whole (levels, care and check-in settings, the attribute schema) queue
        instead of racing: on PostgreSQL a lock that leaves its keys alone (rows referencing
        the community are still written); SQLite's writers queue anyway."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                select(communities.c.id)
                .where(communities.c.id == community_id)
                .with_for_update(key_share=True)
            )

    async def get(self, community_id: str) -> Community | None:
        row = (
            await self.session.execute(select(communities).where(communities.c.id == community_id))
        ).first()
        return _community(row) if row else None

    async def get_many(self, ids: Collection[str]) -> dict[str, Community]:
        rows = await self.session.execute(_COMMUNITIES_BY_ID, {"ids": list(ids)})
        return {row.id: _community(row) for row in rows}

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
        """Store memberships, new or not, with one statement; StaleWrite when one changed
        since it was read (every change raises a membership's version by one)."""
        rows = [_membership_row(membership) for membership in changed]
        await save_versioned(self.session, memberships, rows, ["community_id", "user_id"])

    async def membership(self, community_id: str, user_id: str) -> Membership | None:
        row = (
            await self.session.execute(
                select(memberships).where(
                    memberships.c.community_id == community_id, memberships.c.user_id == user_id
                )
            )
        ).first()
        return _membership(row) if row else None

    async def memberships_of(
        self, pairs: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], Membership]:
        """The memberships of (community, user) pairs, read with one statement."""
        rows = await _rows_of_pairs(self.session, memberships, pairs)
        return {pair: _membership(row) for pair, row in rows.items()}


# The hot reads of a group of joins, built once: expanding IN parameters take any number of
# values without building, or caching, a statement per size.
_COMMUNITIES_BY_ID = select(communities).where(
    communities.c.id.in_(bindparam("ids", expanding=True))
)


@functools.cache
def _pairs_query(table: Table) -> Select[Any]:
    return select(table).where(
        table.c.community_id.in_(bindparam("communities", expanding=True)),
        table.c.user_id.in_(bindparam("users", expanding=True)),
    )


async def _rows_of_pairs(
    session: AsyncSession, table: Table, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], Row[Any]]:
    """Rows of `table` keyed by (community_id, user_id), for the pairs asked, one statement."""
    if not pairs:
        return {}
    rows = await session.execute(
        _pairs_query(table),
        {
            "communities": list({community for community, _ in pairs}),
            "users": list({user for _, user in pairs}),
        },
    )
    found = {(row.community_id, row.user_id): row for row in rows}
    # The two IN lists cross-match pairs nobody asked for; those are dropped.
    return {pair: found[pair] for pair in pairs if pair in found}


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

    async def get_many(
        self, pairs: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], JoinRequest]:
        """The latest requests of (community, user) pairs, read with one statement."""
        rows = await _rows_of_pairs(self.session, join_requests, pairs)
        return {pair: _join_request(row) for pair, row in rows.items()}

    async def save(self, request: JoinRequest, *, was: RequestState | None = None) -> None:
        """Store a join request, new or not; with `was`, only over a request still in that
        state (StaleWrite otherwise: two reviews of one request do not both land)."""
        values = {
            "answers": request.answers,
            "state": int(request.state),
            "created_at": request.created_at,
            "reviewer_user_id": request.reviewer_user_id,
            "reviewed_at": request.reviewed_at,
            "reason": request.reason,
            "accepted_rules_version": request.accepted_rules_version,
        }
        statement = join_requests.update().where(
            join_requests.c.community_id == request.community_id,
            join_requests.c.user_id == request.user_id,
        )
        if was is not None:
            statement = statement.where(join_requests.c.state == int(was))
        result = await self.session.execute(statement.values(**values))
        if not getattr(result, "rowcount", 0):
            if was is not None:
                raise StaleWrite(f"join request of {request.user_id} changed meanwhile")
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
        accepted_rules_version=row.accepted_rules_version,
    )


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
        "rules_version": community.rules_version,
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
        rules_version=row.rules_version,
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
        "accepted_rules_version": membership.accepted_rules_version,
    }


async def list_members(
    session: AsyncSession,
    community: Community,
    *,
    rules_pending: bool,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Membership]:
    """Active members, longest-standing first, after the `after` position."""
    query = select(memberships).where(
        memberships.c.community_id == community.id, memberships.c.active.is_(True)
    )
    if rules_pending:
        query = query.where(memberships.c.accepted_rules_version < community.rules_version)
    if after is not None:
        query = query.where(tuple_(memberships.c.joined_at, memberships.c.user_id) > tuple_(*after))
    query = query.order_by(memberships.c.joined_at, memberships.c.user_id).limit(limit)
    return [_membership(row) for row in (await session.execute(query)).all()]


def _membership(row: Row[Any]) -> Membership:
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
        accepted_rules_version=row.accepted_rules_version,
    )


async def add_rules(session: AsyncSession, rules: RulesVersion) -> None:
    await session.execute(
        community_rules.insert().values(
            community_id=rules.community_id,
            version=rules.version,
            rules=[{"title": rule.title, "body": rule.body} for rule in rules.rules],
            author_user_id=rules.author_user_id,
            created_at=rules.created_at,
        )
    )


async def get_rules(session: AsyncSession, community_id: str, version: int) -> RulesVersion | None:
    row = (
        await session.execute(
            select(community_rules).where(
                community_rules.c.community_id == community_id,
                community_rules.c.version == version,
            )
        )
    ).first()
    if row is None:
        return None
    return RulesVersion(
        community_id=row.community_id,
        version=row.version,
        rules=[Rule(item["title"], item["body"]) for item in row.rules],
        author_user_id=row.author_user_id,
        created_at=utc(row.created_at),
    )


class InviteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, invite: Invite, code_hash: str) -> None:
        await self.session.execute(
            invites.insert().values(code_hash=code_hash, **_invite_row(invite))
        )

    async def get(self, community_id: str, invite_id: str) -> Invite | None:
        row = (
            await self.session.execute(
                select(invites).where(
                    invites.c.community_id == community_id, invites.c.id == invite_id
                )
            )
        ).first()
        return _invite(row) if row else None

    async def by_code(self, community_id: str, code_hash: str) -> Invite | None:
        row = (
            await self.session.execute(
                select(invites).where(
                    invites.c.community_id == community_id, invites.c.code_hash == code_hash
                )
            )
        ).first()
        return _invite(row) if row else None

    async def revoke(self, invite: Invite) -> None:
        result = await self.session.execute(
            invites.update()
            .where(invites.c.community_id == invite.community_id, invites.c.id == invite.id)
            .where(invites.c.revoked_at.is_(None))
            .values(revoked_at=invite.revoked_at)
        )
        if not getattr(result, "rowcount", 0):
            raise StaleWrite(f"invite {invite.id} changed meanwhile")

    async def use(self, invite: Invite, now: datetime) -> bool:
        """Count one use if the invite still admits someone; False when it does not.

        One conditional statement: on PostgreSQL a concurrent use waits for the row lock and
        then re-checks the condition, so uses never exceed max_uses.
        """
        result = await self.session.execute(
            invites.update()
            .where(
                invites.c.id == invite.id,
                invites.c.community_id == invite.community_id,
                invites.c.revoked_at.is_(None),
                invites.c.expires_at > now,
                or_(invites.c.max_uses == 0, invites.c.uses < invites.c.max_uses),
            )
            .values(uses=invites.c.uses + 1)
        )
        return bool(getattr(result, "rowcount", 0))

    async def listing(
        self, community_id: str, *, as_of: datetime, offset: int, limit: int
    ) -> list[Invite]:
        """Invites usable at `as_of` first, then the rest; newest first within each."""
        usable = and_(
            invites.c.revoked_at.is_(None),
            invites.c.expires_at > as_of,
            or_(invites.c.max_uses == 0, invites.c.uses < invites.c.max_uses),
        )
        query = (
            select(invites)
            .where(invites.c.community_id == community_id)
            .order_by(case((usable, 0), else_=1), invites.c.created_at.desc(), invites.c.id)
            .offset(offset)
            .limit(limit)
        )
        return [_invite(row) for row in (await self.session.execute(query)).all()]

    async def revoke_all_by(self, community_id: str, user_id: str, now: datetime) -> int:
        result = await self.session.execute(
            invites.update()
            .where(
                invites.c.community_id == community_id,
                invites.c.creator_user_id == user_id,
                invites.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def created_by(self, community_id: str, user_id: str) -> list[Invite]:
        query = (
            select(invites)
            .where(invites.c.community_id == community_id, invites.c.creator_user_id == user_id)
            .order_by(invites.c.created_at)
        )
        return [_invite(row) for row in (await self.session.execute(query)).all()]


def _invite_row(invite: Invite) -> dict[str, object]:
    return {
        "id": invite.id,
        "community_id": invite.community_id,
        "code_prefix": invite.code_prefix,
        "creator_user_id": invite.creator_user_id,
        "created_at": invite.created_at,
        "expires_at": invite.expires_at,
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "revoked_at": invite.revoked_at,
    }


def _invite(row: Row[Any]) -> Invite:
    return Invite(
        id=row.id,
        community_id=row.community_id,
        code_prefix=row.code_prefix,
        creator_user_id=row.creator_user_id,
        created_at=utc(row.created_at),
        expires_at=utc(row.expires_at),
        max_uses=row.max_uses,
        uses=row.uses,
        revoked_at=utc(row.revoked_at) if row.revoked_at else None,
    )


async def delete_join_request(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        join_requests.delete().where(
            join_requests.c.community_id == community_id, join_requests.c.user_id == user_id
        )
    )


async def audit_entries_about(
    session: AsyncSession, community_id: str, user_id: str
) -> list[Row[Any]]:
    query = (
        select(moderation_log)
        .where(
            moderation_log.c.community_id == community_id,
            moderation_log.c.target_user_id == user_id,
        )
        .order_by(moderation_log.c.id)
    )
    return list((await session.execute(query)).all())
