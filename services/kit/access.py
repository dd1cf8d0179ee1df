"""Who may do what in a community, for services other than members.

The members service is the authority on roles; every other service keeps this projection
of its events (CommunityCreated, MemberJoined, MemberLeft) in its own database, reads it
through a short Redis cache, and checks the caller's role on every RPC. The projection is
order-tolerant: a row changes only for a newer version (docs/decisions/0005).

The projection trails the members service by the time an event takes to arrive (normally
milliseconds), so a community created a moment ago may still be unknown here: that answers
NOT_FOUND with a hint to retry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity
from services.kit.cache import ResilientRedis
from services.kit.database import Database
from services.kit.errors import NotFound, PermissionDenied
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.members.v1 import members_events_pb2 as members_events

CACHE_SECONDS = 5


class Role(enum.IntEnum):
    # Same numbers as studyhall.members.v1.Role; higher holds every right of the lower.
    MEMBER = 1
    MODERATOR = 2
    ADMIN = 3
    OWNER = 4


PRIVATE = 3  # studyhall.members.v1.Visibility.VISIBILITY_PRIVATE


@dataclass(frozen=True)
class AccessTables:
    communities: Table
    roles: Table


def access_tables(metadata: MetaData) -> AccessTables:
    return AccessTables(
        communities=Table(
            "access_communities",
            metadata,
            Column("community_id", String(36), primary_key=True),
            Column("visibility", Integer, nullable=False),
            Column("version", BigInteger, nullable=False),
        ),
        roles=Table(
            "access_roles",
            metadata,
            Column("community_id", String(36), primary_key=True),
            Column("user_id", String(200), primary_key=True),
            Column("role", Integer, nullable=False),
            Column("active", Boolean, nullable=False),
            Column("version", BigInteger, nullable=False),
        ),
    )


@dataclass(frozen=True)
class Standing:
    """What this service knows of a caller in a community."""

    known: bool
    visibility: int = 0
    role: Role | None = None

    def encode(self) -> str:
        return f"{int(self.known)}:{self.visibility}:{int(self.role or 0)}"

    @classmethod
    def decode(cls, raw: bytes) -> Standing:
        known, visibility, role = (int(part) for part in raw.decode().split(":"))
        return cls(bool(known), visibility, Role(role) if role else None)


class Access:
    def __init__(
        self, service: str, database: Database, tables: AccessTables, cache: ResilientRedis
    ) -> None:
        self.service = service
        self.database = database
        self.tables = tables
        self.cache = cache

    async def standing(self, community_id: str, user_id: str) -> Standing:
        key = f"studyhall:{self.service}:standing:{community_id}:{user_id}"
        cached: Any = await self.cache.call(lambda client: client.get(key), None)
        if cached is not None:
            return Standing.decode(cached)
        async with self.database.read() as session:
            standing = await self._load(session, community_id, user_id)
        if standing.known:
            # Unknown communities are not cached: one created a moment ago arrives soon.
            await self.cache.call(
                lambda client: client.set(key, standing.encode(), ex=CACHE_SECONDS), None
            )
        return standing

    async def require_reader(self, community_id: str, caller: Identity) -> None:
        """Anyone may read a public or unlisted community; only members a private one."""
        if caller.operator:
            return
        standing = await self.standing(community_id, caller.user_id)
        if not standing.known or (standing.visibility == PRIVATE and standing.role is None):
            raise _not_found(community_id)

    async def require_role(
        self, community_id: str, caller: Identity, minimum: Role, what: str
    ) -> None:
        if caller.operator:
            return
        standing = await self.standing(community_id, caller.user_id)
        if not standing.known or (standing.visibility == PRIVATE and standing.role is None):
            raise _not_found(community_id)
        if standing.role is None or standing.role < minimum:
            held = standing.role.name.lower() if standing.role else "not a member"
            raise PermissionDenied(
                f"{what} needs the {minimum.name.lower()} role or higher in community "
                f"{community_id}; you are {held}"
            )

    async def _load(self, session: AsyncSession, community_id: str, user_id: str) -> Standing:
        communities, roles = self.tables.communities, self.tables.roles
        visibility = await session.scalar(
            select(communities.c.visibility).where(communities.c.community_id == community_id)
        )
        if visibility is None:
            return Standing(known=False)
        row = (
            await session.execute(
                select(roles.c.role).where(
                    roles.c.community_id == community_id,
                    roles.c.user_id == user_id,
                    roles.c.active.is_(True),
                )
            )
        ).first()
        return Standing(True, int(visibility), Role(row.role) if row else None)


def access_subscription(service: str, tables: AccessTables) -> Subscription:
    """The durable consumer that keeps `tables` up to date from members' events."""

    async def community_created(
        session: AsyncSession, event: members_events.CommunityCreated, envelope: Envelope
    ) -> None:
        await upsert_if_newer(
            session,
            tables.communities,
            {
                "community_id": event.community_id,
                "visibility": int(event.visibility),
                "version": event.version,
            },
            ["community_id"],
        )

    async def community_updated(
        session: AsyncSession, event: members_events.CommunityUpdated, envelope: Envelope
    ) -> None:
        # Carries the visibility whatever changed, so this row is always complete.
        await upsert_if_newer(
            session,
            tables.communities,
            {
                "community_id": event.community_id,
                "visibility": int(event.visibility),
                "version": event.version,
            },
            ["community_id"],
        )

    async def member_joined(
        session: AsyncSession, event: members_events.MemberJoined, envelope: Envelope
    ) -> None:
        await upsert_if_newer(
            session,
            tables.roles,
            {
                "community_id": event.community_id,
                "user_id": event.user_id,
                "role": int(event.role),
                "active": True,
                "version": event.version,
            },
            ["community_id", "user_id"],
        )

    async def role_changed(
        session: AsyncSession, event: members_events.RoleChanged, envelope: Envelope
    ) -> None:
        await upsert_if_newer(
            session,
            tables.roles,
            {
                "community_id": event.community_id,
                "user_id": event.user_id,
                "role": int(event.role),
                "active": True,
                "version": event.version,
            },
            ["community_id", "user_id"],
        )

    async def member_left(
        session: AsyncSession, event: members_events.MemberLeft, envelope: Envelope
    ) -> None:
        await upsert_if_newer(
            session,
            tables.roles,
            {
                "community_id": event.community_id,
                "user_id": event.user_id,
                "role": int(Role.MEMBER),
                "active": False,
                "version": event.version,
            },
            ["community_id", "user_id"],
        )

    return Subscription(
        name=f"{service}-access",
        source_service="members",
        handlers={
            members_events.CommunityCreated: community_created,
            members_events.CommunityUpdated: community_updated,
            members_events.MemberJoined: member_joined,
            members_events.RoleChanged: role_changed,
            members_events.MemberLeft: member_left,
        },
    )


async def upsert_if_newer(
    session: AsyncSession, table: Table, values: dict[str, Any], keys: list[str]
) -> None:
    """Insert, or replace the row when these values are a newer version of it."""
    insert: Any = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    statement = insert(table).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=keys,
            set_={name: statement.excluded[name] for name in values if name not in keys},
            where=table.c.version < statement.excluded.version,
        )
    )


def _not_found(community_id: str) -> NotFound:
    return NotFound(
        f"community {community_id} not found (if it was created a moment ago, retry shortly)"
    )
