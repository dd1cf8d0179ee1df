"""Who may do what in a community, for services other than members.

The members service is the authority on roles; every other service keeps this projection
of its events in its own database, reads it through a short Redis cache, and checks the
caller on every RPC: the community (visibility, archived: read-only everywhere), the
caller's role and mute, and the privileges the caller's level unlocks (LevelsChanged gives
a community's levels, LevelChanged a member's level). The projection is order-tolerant: a
row changes only for a newer version (docs/decisions/0005); archiving is for good, so it
sticks whatever arrives after it.

The projection trails the members service by the time an event takes to arrive (normally
milliseconds), so a community created a moment ago may still be unknown here: that answers
NOT_FOUND with a hint to retry.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    false,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity
from services.kit.cache import ResilientRedis
from services.kit.database import Database, utc
from services.kit.errors import FailedPrecondition, NotFound, PermissionDenied
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from services.kit.projection import upsert_newer, upsert_only
from studyhall.members.v1 import members_events_pb2 as members_events
from studyhall.members.v1 import recognition_events_pb2 as recognition_events

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
    levels: Table


def access_tables(metadata: MetaData) -> AccessTables:
    return AccessTables(
        communities=Table(
            "access_communities",
            metadata,
            Column("community_id", String(36), primary_key=True),
            Column("visibility", Integer, nullable=False),
            Column("version", BigInteger, nullable=False),
            Column("archived", Boolean, nullable=False, server_default=false()),
            # The community's IANA time zone; empty: UTC.
            Column("time_zone", String(64), nullable=False, server_default=""),
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
            # The member's level, ordered by (levels version, ledger entry) packed in one
            # integer (`level_order`): see LevelChanged.levels_version.
            Column("level", Integer, nullable=False, server_default="1"),
            Column("level_order", BigInteger, nullable=False, server_default="0"),
        ),
        levels=Table(
            "access_levels",
            metadata,
            Column("community_id", String(36), primary_key=True),
            # The privileges each level unlocks, level 1 first (a list of lists of names).
            Column("privileges", JSON, nullable=False),
            Column("version", BigInteger, nullable=False),
        ),
    )


@dataclass(frozen=True)
class Standing:
    """What this service knows of a caller in a community."""

    known: bool
    visibility: int = 0
    role: Role | None = None
    muted_until: float = 0.0  # epoch seconds; 0 when not muted
    archived: bool = False
    # Privileges some level of the community names, and those the caller's level holds.
    gated: frozenset[str] = frozenset()
    held: frozenset[str] = frozenset()

    def muted(self) -> bool:
        return self.muted_until > time.time()

    def holds(self, privilege: str) -> bool:
        """For a privilege open to every member until a level names it: whether the
        caller's level holds it."""
        return privilege not in self.gated or privilege in self.held

    def encode(self) -> str:
        return ":".join(
            (
                str(int(self.known)),
                str(self.visibility),
                str(int(self.role or 0)),
                str(self.muted_until),
                str(int(self.archived)),
                ",".join(sorted(self.gated)),
                ",".join(sorted(self.held)),
            )
        )

    @classmethod
    def decode(cls, raw: bytes) -> Standing:
        known, visibility, role, muted_until, archived, gated, held = raw.decode().split(":")
        return cls(
            bool(int(known)),
            int(visibility),
            Role(int(role)) if int(role) else None,
            float(muted_until),
            bool(int(archived)),
            frozenset(filter(None, gated.split(","))),
            frozenset(filter(None, held.split(","))),
        )


class Access:
    def __init__(
        self, service: str, database: Database, tables: AccessTables, cache: ResilientRedis
    ) -> None:
        self.service = service
        self.database = database
        self.tables = tables
        self.cache = cache
        self._standings = _standings_statement(tables)

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
        check_reader(community_id, standing, caller)
        return standing

    async def require_role(
        self,
        community_id: str,
        caller: Identity,
        minimum: Role,
        what: str,
        *,
        writable: bool = False,
    ) -> Standing:
        """`minimum` or a higher role; `writable`: in a community that is not archived too,
        checked after the role (one read of the standing for both)."""
        standing = await self.standing(community_id, caller.user_id)
        check_role(community_id, standing, caller, minimum, what, writable=writable)
        return standing

    async def require_voice(
        self, community_id: str, caller: Identity, what: str, *, writable: bool = False
    ) -> Standing:
        """A member who is not muted: the right to post and comment. `writable`: in a
        community that is not archived too, checked after the mute."""
        standing = await self.standing(community_id, caller.user_id)
        check_voice(community_id, standing, caller, what, writable=writable)
        return standing

    async def require_writable(self, community_id: str, caller: Identity, what: str) -> Standing:
        """An archived community is read-only: nothing in it changes, for anyone."""
        standing = await self.require_reader(community_id, caller)
        check_writable(community_id, standing, what)
        return standing

    async def require_privilege(
        self,
        community_id: str,
        caller: Identity,
        privilege: str,
        what: str,
        *,
        open_until_gated: bool,
    ) -> Standing:
        """A member whose level unlocks `privilege`; moderators and above, and operators,
        always hold it. `open_until_gated`: every member holds it until some level names it
        (post_links); otherwise only from the level that names it (create_activities)."""
        if not open_until_gated:
            standing = await self.require_reader(community_id, caller)
            role = standing.role
            if caller.operator or (role is not None and role >= Role.MODERATOR):
                return standing
            if role is None or privilege not in standing.held:
                held = role.name.lower() if role else "not a member"
                raise PermissionDenied(
                    f"{what} needs the moderator role or higher in community {community_id} "
                    f"(or a level that unlocks {privilege}); you are {held}"
                )
            return standing
        standing = await self.require_role(community_id, caller, Role.MEMBER, what)
        check_open_privilege(community_id, standing, caller, privilege, what)
        return standing

    async def time_zone(self, community_id: str) -> str:
        """The community's IANA time zone as members last said; empty for UTC."""
        table = self.tables.communities
        async with self.database.read() as session:
            zone = await session.scalar(
                select(table.c.time_zone).where(table.c.community_id == community_id)
            )
        return str(zone or "")

    async def standings(
        self, session: AsyncSession, pairs: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], Standing]:
        """The standing of each (community id, user id) in `pairs`, read in `session` (a
        group's write transaction) with one statement: what a group of writes decides on."""
        if not pairs:
            return {}
        rows = await session.execute(
            self._standings,
            {
                "users": list({user for _, user in pairs}),
                "communities": list({community for community, _ in pairs}),
            },
        )
        known: dict[str, Any] = {}
        found: dict[tuple[str, str], Standing] = {}
        for row in rows:
            known[row.community_id] = row
            if row.user_id is not None:
                found[(row.community_id, row.user_id)] = _standing_of(row)
        return {
            pair: found.get(pair)
            or (_outsider(known[pair[0]]) if pair[0] in known else Standing(known=False))
            for pair in pairs
        }

    async def _load(self, session: AsyncSession, community_id: str, user_id: str) -> Standing:
        return (await self.standings(session, {(community_id, user_id)}))[(community_id, user_id)]


def _outsider(row: Any) -> Standing:
    """The standing in a known community of a caller who holds no role in it."""
    unlocked: list[list[str]] = list(row.privileges or [])
    gated = frozenset(name for names in unlocked for name in names)
    return Standing(True, int(row.visibility), archived=bool(row.archived), gated=gated)


def _standing_of(row: Any) -> Standing:
    """The standing of a caller with an active role, from a row of the standing's columns."""
    outsider = _outsider(row)
    unlocked: list[list[str]] = list(row.privileges or [])
    muted = utc(row.muted_until).timestamp() if row.muted_until else 0.0
    held = frozenset(name for names in unlocked[: int(row.level)] for name in names)
    return Standing(
        True,
        outsider.visibility,
        Role(row.role),
        muted,
        outsider.archived,
        outsider.gated,
        held,
    )


_GONE = (members_events.MemberLeft, members_events.MemberRemoved, members_events.MemberBanned)
_STANDING = (
    members_events.MemberJoined,
    members_events.RoleChanged,
    members_events.MemberMuted,
    members_events.MemberUnmuted,
)
_COMMUNITY = (members_events.CommunityCreated, members_events.CommunityUpdated)
_LEVELS = (recognition_events.LevelsChanged, recognition_events.LevelChanged)
# A member's level order: the levels version in the high bits, the ledger entry below.
_ENTRY_BITS = 40


def access_subscription(service: str, tables: AccessTables) -> Subscription:
    """The durable consumer that keeps `tables` up to date from members' events."""

    async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
        communities: list[dict[str, Any]] = []
        roles: list[dict[str, Any]] = []
        archived: list[dict[str, Any]] = []
        ladders: list[dict[str, Any]] = []
        member_levels: list[dict[str, Any]] = []
        for event, _envelope in batch:
            if isinstance(event, members_events.CommunityArchived):
                # Unknown yet (the archive overtook its creation): hidden until it arrives.
                archived.append(
                    {
                        "community_id": event.community_id,
                        "visibility": PRIVATE,
                        "version": 0,
                        "archived": True,
                    }
                )
                continue
            if isinstance(event, recognition_events.LevelsChanged):
                ladders.append(
                    {
                        "community_id": event.community_id,
                        "privileges": [list(level.privileges) for level in event.levels],
                        "version": event.version,
                    }
                )
                continue
            if isinstance(event, recognition_events.LevelChanged):
                member_levels.append(
                    {
                        "community_id": event.community_id,
                        "user_id": event.user_id,
                        "role": int(Role.MEMBER),
                        "active": False,
                        "version": 0,
                        "level": event.new_level,
                        "level_order": event.levels_version << _ENTRY_BITS | event.entry_id,
                    }
                )
                continue
            if isinstance(event, _COMMUNITY):
                communities.append(
                    {
                        "community_id": event.community_id,
                        "visibility": int(event.visibility),
                        "version": event.version,
                        "time_zone": event.time_zone,
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
        await upsert_only(session, tables.communities, archived, ["community_id"], ["archived"])
        await upsert_newer(session, tables.roles, roles, ["community_id", "user_id"])
        await upsert_only(
            session,
            tables.roles,
            member_levels,
            ["community_id", "user_id"],
            ["level", "level_order"],
            newer="level_order",
        )
        await upsert_newer(session, tables.levels, ladders, ["community_id"])

    return Subscription(
        name=f"{service}-access",
        source_service="members",
        event_types=(
            *_COMMUNITY,
            members_events.CommunityArchived,
            *_STANDING,
            *_GONE,
            *_LEVELS,
        ),
        apply=apply,
    )


def _standings_statement(tables: AccessTables) -> Select[Any]:
    """The communities, their levels and the users' active roles of some (community, user)
    pairs, in one statement built once: building and keying it per read cost as much as
    running it.

    The roles are matched by community and `user_id IN (users)`, which may return a pair
    nobody asked for (the caller keeps the asked ones): SQLite's planner does not use the
    primary key for a row-value IN inside a join's ON clause and read every role of the
    community instead (18 ms against 0.8 ms for 32 pairs in a community of 40,000)."""
    communities, roles, levels = tables.communities, tables.roles, tables.levels
    return (
        select(
            communities.c.community_id,
            communities.c.visibility,
            communities.c.archived,
            levels.c.privileges,
            roles.c.user_id,
            roles.c.role,
            roles.c.muted_until,
            roles.c.level,
        )
        .outerjoin(levels, levels.c.community_id == communities.c.community_id)
        .outerjoin(
            roles,
            (roles.c.community_id == communities.c.community_id)
            & roles.c.user_id.in_(bindparam("users", expanding=True))
            & roles.c.active.is_(True),
        )
        .where(communities.c.community_id.in_(bindparam("communities", expanding=True)))
    )


def check_reader(community_id: str, standing: Standing, caller: Identity) -> None:
    """As `Access.require_reader`, on a standing already read."""
    if not standing.known:
        raise _not_found(community_id)
    if standing.visibility == PRIVATE and standing.role is None and not caller.operator:
        raise _not_found(community_id)


def check_role(
    community_id: str,
    standing: Standing,
    caller: Identity,
    minimum: Role,
    what: str,
    *,
    writable: bool = False,
) -> None:
    """As `Access.require_role`, on a standing already read."""
    check_reader(community_id, standing, caller)
    # Operators skip the role, never the existence: a mistyped id must not create records.
    if not caller.operator and (standing.role is None or standing.role < minimum):
        held = standing.role.name.lower() if standing.role else "not a member"
        raise PermissionDenied(
            f"{what} needs the {minimum.name.lower()} role or higher in community "
            f"{community_id}; you are {held}"
        )
    if writable:
        check_writable(community_id, standing, what)


def check_voice(
    community_id: str, standing: Standing, caller: Identity, what: str, *, writable: bool = False
) -> None:
    """As `Access.require_voice`, on a standing already read."""
    check_role(community_id, standing, caller, Role.MEMBER, what)
    if standing.muted() and not caller.operator:
        until = datetime.fromtimestamp(standing.muted_until, UTC)
        shown = "until lifted" if until.year >= 9999 else f"until {until:%Y-%m-%d %H:%M} UTC"
        raise PermissionDenied(f"you are muted in community {community_id} {shown}")
    if writable:
        check_writable(community_id, standing, what)


def check_open_privilege(
    community_id: str, standing: Standing, caller: Identity, privilege: str, what: str
) -> None:
    """For a member's `standing`: a privilege every member holds until some level names it
    (post_links); moderators and above, and operators, always hold it."""
    if caller.operator or (standing.role is not None and standing.role >= Role.MODERATOR):
        return
    if not standing.holds(privilege):
        raise PermissionDenied(
            f"{what} needs the {privilege} privilege, which a higher level in community "
            f"{community_id} unlocks"
        )


def check_writable(community_id: str, standing: Standing, what: str) -> None:
    """An archived community is read-only: nothing in it changes, for anyone."""
    if standing.archived:
        raise FailedPrecondition(
            f"community {community_id} is archived: it is read-only, so {what} is refused"
        )


def _not_found(community_id: str) -> NotFound:
    return NotFound(
        f"community {community_id} not found (if it was created a moment ago, retry shortly)"
    )


class StandingData:
    """The data holder (services/kit/data_rights.py) of this projection: its copy of a
    user's standing in a community. Erasure leaves it as members leaves the membership
    (the user id, the version, a running mute), so a late event cannot readmit anyone;
    the MemberLeft that members publishes with the erasure has already made it inactive."""

    def __init__(self, tables: AccessTables) -> None:
        self.roles = tables.roles
        self.EXPORTS = {"standing": self.export}
        self.ERASERS = ()

    async def export(
        self, session: AsyncSession, community_id: str, user_id: str
    ) -> dict[str, Any] | None:
        roles = self.roles
        row = (
            await session.execute(
                select(
                    roles.c.role,
                    roles.c.active,
                    roles.c.level,
                    roles.c.muted_until,
                    roles.c.version,
                ).where(roles.c.community_id == community_id, roles.c.user_id == user_id)
            )
        ).first()
        if row is None:
            return None
        return {
            "role": Role(row.role).name.lower(),
            "active": bool(row.active),
            "level": int(row.level),
            "muted_until": utc(row.muted_until) if row.muted_until else None,
            "version": int(row.version),
        }
