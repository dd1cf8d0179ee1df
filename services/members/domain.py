"""Communities and their members: rules only, no I/O."""

from __future__ import annotations

import re
import unicodedata
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any


class Visibility(IntEnum):
    PUBLIC = 1
    UNLISTED = 2
    PRIVATE = 3


class JoinPolicy(IntEnum):
    OPEN = 1
    APPROVAL = 2
    INVITE_ONLY = 3


class Role(IntEnum):
    # Ordered: a higher role holds every permission of the lower ones.
    MEMBER = 1
    MODERATOR = 2
    ADMIN = 3
    OWNER = 4


@dataclass
class Community:
    id: str
    name: str
    slug: str
    topic: str
    owner_user_id: str
    mission: str = ""
    audience: str = ""
    tags: list[str] = field(default_factory=list)
    visibility: Visibility = Visibility.PUBLIC
    join_policy: JoinPolicy = JoinPolicy.OPEN
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1
    locale: str = ""
    time_zone: str = ""
    archived_at: datetime | None = None

    def visible_to_outsiders(self) -> bool:
        return self.visibility is not Visibility.PRIVATE

    @property
    def etag(self) -> str:
        return f"v{self.version}"


# What UpdateCommunity may change, by field-mask path.
UPDATABLE = (
    "name",
    "slug",
    "topic",
    "mission",
    "audience",
    "tags",
    "visibility",
    "join_policy",
    "locale",
    "time_zone",
)


class CommunityError(Exception):
    """A change to a community the rules forbid; `code` says which rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_etag(community: Community, etag: str) -> None:
    if etag and etag != community.etag:
        raise CommunityError(
            "stale",
            f"community {community.id} changed since you read it (etag {etag}, now "
            f"{community.etag}); read it again and reapply your change",
        )


def update(community: Community, changes: Mapping[str, Any], etag: str) -> Community:
    """The community with `changes` applied (paths from UPDATABLE) and its version bumped."""
    if community.archived_at is not None:
        raise CommunityError("archived", f"community {community.id} is archived")
    check_etag(community, etag)
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise ValueError(f"not updatable: {unknown}")
    values = dict(changes)
    if "tags" in values:
        values["tags"] = sorted(set(values["tags"]))
    return replace(community, **values, version=community.version + 1)


def archive(community: Community, etag: str) -> Community:
    if community.archived_at is not None:
        raise CommunityError("archived", f"community {community.id} is already archived")
    check_etag(community, etag)
    return replace(community, archived_at=datetime.now(UTC), version=community.version + 1)


@dataclass(frozen=True)
class Membership:
    """A user's place in a community. Kept after leaving, so its version keeps growing and
    consumers can tell a late event from a current one."""

    community_id: str
    user_id: str
    role: Role
    joined_at: datetime
    active: bool = True
    version: int = 1
    left_at: datetime | None = None


class MembershipError(Exception):
    """A membership change the rules forbid; `code` says which rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def join(community: Community, current: Membership | None, user_id: str) -> Membership:
    if community.archived_at is not None:
        raise MembershipError("archived", f"community {community.id} is archived")
    if current is not None and current.active:
        raise MembershipError("already_member", f"{user_id} is already a member of {community.id}")
    if community.join_policy is not JoinPolicy.OPEN:
        raise MembershipError(
            "not_open",
            f"community {community.id} does not take members directly "
            f"(join policy: {community.join_policy.name.lower()})",
        )
    now = datetime.now(UTC)
    return Membership(
        community_id=community.id,
        user_id=user_id,
        role=Role.MEMBER,
        joined_at=now,
        version=(current.version + 1) if current else 1,
    )


def leave(current: Membership | None, community_id: str, user_id: str) -> Membership:
    if current is None or not current.active:
        raise MembershipError("not_member", f"{user_id} is not a member of {community_id}")
    if current.role is Role.OWNER:
        raise MembershipError(
            "owner_cannot_leave",
            "the owner cannot leave; transfer ownership to another member first",
        )
    return replace(current, active=False, version=current.version + 1, left_at=datetime.now(UTC))


def new_community(
    *,
    name: str,
    topic: str,
    owner_user_id: str,
    slug: str = "",
    mission: str = "",
    audience: str = "",
    tags: list[str] | None = None,
    visibility: Visibility | None = None,
    join_policy: JoinPolicy | None = None,
) -> tuple[Community, Membership]:
    """A new community and its owner's membership: the creator owns what they create."""
    community_id = str(uuid.uuid4())
    community = Community(
        id=community_id,
        name=name.strip(),
        slug=slug or slugify(name, fallback=community_id[:8]),
        topic=topic.strip(),
        owner_user_id=owner_user_id,
        mission=mission.strip(),
        audience=audience.strip(),
        tags=sorted(set(tags or [])),
        visibility=visibility or Visibility.PUBLIC,
        join_policy=join_policy or JoinPolicy.OPEN,
    )
    owner = Membership(community_id, owner_user_id, Role.OWNER, community.created_at)
    return community, owner


LOCALE_PATTERN = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


_SLUG_SEPARATORS = re.compile(r"[^\w]+")
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def slugify(name: str, *, fallback: str) -> str:
    """An ASCII handle from a name; names with no ASCII letters (e.g. Chinese) get the fallback."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = (
        _SLUG_SEPARATORS.sub("-", ascii_name.lower()).replace("_", "-").strip("-")[:64].strip("-")
    )
    return slug if SLUG_PATTERN.fullmatch(slug) else fallback
