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
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity
from services.kit.cache import ResilientRedis
from services.kit.database import Database, utc
from services.kit.errors import NotFound, PermissionDenied
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from services.kit.projection import upsert_newer
from studyhall.members.v1 import members_events_pb2 as members_events

# Short: a role change or mute takes effect here within this long of its event arriving.
CACHE_SECONDS = 1


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
            Column("muted_until", DateTime(timezone=True), nullable=True),
        ),
    )


@dataclass(frozen=True)
class Standing:
    """What this service knows of a caller in a community."""

    known: bool
    visibility: int = 0
    role: Role | None = None
    muted_until: float = 0.0  # epoch seconds; 0 when not muted

    def muted(self) -> bool:
        return self.muted_until > time.time()

    def encode(self) -> str:
        return f"{int(self.known)}:{self.visibility}:{int(self.role or 0)}:{self.muted_until}"

    @classmethod
    def decode(cls, raw: bytes) -> Standing:
        known, visibility, role, muted_until = raw.decode().split(":")
        return cls(
            bool(int(known)),
            int(visibility),
            Role(int(role)) if int(role) else None,
            float(muted_until),
        )


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

    async def require_reader(self, community_id: str, caller: Identity) -> Standing:
        """Anyone may read a public or unlisted community; only members a private one.
        Operators read any community that exists."""
        standing = await self.standing(community_id, caller.user_id)
        if not standing.known:
            raise _not_found(community_id)
        if standing.visibility == PRIVATE and standing.role is None and not caller.operator:
            raise _not_found(community_id)
        return standing

    async def require_role(
        self, community_id: str, caller: Identity, minimum: Role, what: str
    ) -> Standing:
        # Operators skip the role, never the existence: a mistyped id must not create records.
        standing = await self.require_reader(community_id, caller)
        if caller.operator:
            return standing
        if standing.role is None or standing.role < minimum:
            held = standing.role.name.lower() if standing.role else "not a member"
            raise PermissionDenied(
                f"{what} needs the {minimum.name.lower()} role or higher in community "
                f"{community_id}; you are {held}"
            )
        return standing

    async def require_voice(self, community_id: str, caller: Identity, what: str) -> None:
        """A member who is not muted: the right to post and comment."""
        standing = await self.require_role(community_id, caller, Role.MEMBER, what)
        if standing.muted() and not caller.operator:
            until = datetime.fromtimestamp(standing.muted_until, UTC)
            shown = "until lifted" if until.year >= 9999 else f"until {until:%Y-%m-%d %H:%M} UTC"
            raise PermissionDenied(f"you are muted in community {community_id} {shown}")

    async def _load(self, session: AsyncSession, community_id: str, user_id: str) -> Standing:
        communities, roles = self.tables.communities, self.tables.roles
        visibility = await session.scalar(
            select(communities.c.visibility).where(communities.c.community_id == community_id)
        )
        if visibility is None:
            return Standing(known=False)
        row = (
            await session.execute(
                select(roles.c.role, roles.c.muted_until).where(
                    roles.c.community_id == community_id,
                    roles.c.user_id == user_id,
                    roles.c.active.is_(True),
                )
            )
        ).first()
        if row is None:
            return Standing(True, int(visibility))
        muted = utc(row.muted_until).timestamp() if row.muted_until else 0.0
        return Standing(True, int(visibility), Role(row.role), muted)


_GONE = (members_events.MemberLeft, members_events.MemberRemoved, members_events.MemberBanned)
_STANDING = (
    members_events.MemberJoined,
    members_events.RoleChanged,
    members_events.MemberMuted,
    members_events.MemberUnmuted,
)
_COMMUNITY = (members_events.CommunityCreated, members_events.CommunityUpdated)


def access_subscription(service: str, tables: AccessTables) -> Subscription:
    """The durable consumer that keeps `tables` up to date from members' events."""

    async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
        communities: list[dict[str, Any]] = []
        roles: list[dict[str, Any]] = []
        for event, _envelope in batch:
            if isinstance(event, _COMMUNITY):
                communities.append(
                    {
                        "community_id": event.community_id,
                        "visibility": int(event.visibility),
                        "version": event.version,
                    }
                )
                continue
            # Every membership event carries the whole standing, so the newest row is
            # complete whichever events arrived before it.
            present = isinstance(event, _STANDING)
            carries_mute = "muted_until" in event.DESCRIPTOR.fields_by_name
            muted = event.muted_until if carries_mute and event.HasField("muted_until") else None
            roles.append(
                {
                    "community_id": event.community_id,
                    "user_id": event.user_id,
                    "role": int(event.role) if present else int(Role.MEMBER),
                    "active": present,
                    "version": event.version,
                    "muted_until": muted.ToDatetime(tzinfo=UTC) if muted is not None else None,
                }
            )
        await upsert_newer(session, tables.communities, communities, ["community_id"])
        await upsert_newer(session, tables.roles, roles, ["community_id", "user_id"])

    return Subscription(
        name=f"{service}-access",
        source_service="members",
        event_types=(*_COMMUNITY, *_STANDING, *_GONE),
        apply=apply,
    )


def _not_found(community_id: str) -> NotFound:
    return NotFound(
        f"community {community_id} not found (if it was created a moment ago, retry shortly)"
    )
