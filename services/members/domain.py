"""Communities and their members: rules only, no I/O."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum


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

    def visible_to_outsiders(self) -> bool:
        return self.visibility is not Visibility.PRIVATE


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


_SLUG_SEPARATORS = re.compile(r"[^\w]+")
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def slugify(name: str, *, fallback: str) -> str:
    """An ASCII handle from a name; names with no ASCII letters (e.g. Chinese) get the fallback."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = (
        _SLUG_SEPARATORS.sub("-", ascii_name.lower()).replace("_", "-").strip("-")[:64].strip("-")
    )
    return slug if SLUG_PATTERN.fullmatch(slug) else fallback
