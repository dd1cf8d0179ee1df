"""Communities and their members: rules only, no I/O."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.kit.zones import zone


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
    join_questions: list[str] = field(default_factory=list)
    # The current version of the rules; 0 while the community has none.
    rules_version: int = 0

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
    "join_questions",
)


MAX_JOIN_QUESTIONS = 10


def check_etag(community: Community, etag: str) -> None:
    if etag and etag != community.etag:
        raise FailedPrecondition(
            f"community {community.id} changed since you read it (etag {etag}, now "
            f"{community.etag}); read it again and reapply your change",
        )


def update(community: Community, changes: Mapping[str, Any], etag: str) -> Community:
    """The community with `changes` applied (paths from UPDATABLE) and its version bumped."""
    if community.archived_at is not None:
        raise FailedPrecondition(f"community {community.id} is archived")
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
        raise FailedPrecondition(f"community {community.id} is already archived")
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
    muted_until: datetime | None = None
    banned_until: datetime | None = None
    accepted_rules_version: int = 0

    def accepted_rules_of(self, community: Community) -> bool:
        return self.accepted_rules_version >= community.rules_version

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and self.muted_until > now

    def banned(self, now: datetime) -> bool:
        return self.banned_until is not None and self.banned_until > now


# "Until lifted": far enough that it never lapses, and still a real time for every store.
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)


class RequestState(IntEnum):
    PENDING = 1
    APPROVED = 2
    REJECTED = 3


@dataclass(frozen=True)
class JoinRequest:
    community_id: str
    user_id: str
    answers: list[str]
    state: RequestState
    created_at: datetime
    reviewer_user_id: str = ""
    reviewed_at: datetime | None = None
    reason: str = ""
    accepted_rules_version: int = 0


def apply_to_join(
    community: Community,
    current: Membership | None,
    pending: JoinRequest | None,
    user_id: str,
    answers: list[str],
    *,
    accepted_rules: int = 0,
    invited: bool = False,
) -> Membership | JoinRequest:
    """A membership at once (open communities, or anyone holding a valid invite) or a
    request to review (approval)."""
    if community.join_policy is JoinPolicy.APPROVAL and not invited:
        if community.archived_at is not None:
            raise FailedPrecondition(f"community {community.id} is archived")
        if current is not None and current.active:
            raise AlreadyExists(f"{user_id} is already a member of {community.id}")
        _refuse_banned(current)
        if pending is not None and pending.state is RequestState.PENDING:
            raise AlreadyExists(
                f"{user_id} already asked to join {community.id}; wait for review",
            )
        if len(answers) != len(community.join_questions):
            raise InvalidArgument.field(
                "answers",
                f"answer each of the {len(community.join_questions)} join questions, in order",
            )
        require_rules_accepted(community, accepted_rules)
        return JoinRequest(
            community.id,
            user_id,
            list(answers),
            RequestState.PENDING,
            datetime.now(UTC),
            accepted_rules_version=accepted_rules,
        )
    return join(community, current, user_id, accepted_rules=accepted_rules, invited=invited)


def review(
    request: JoinRequest | None,
    community: Community,
    current: Membership | None,
    *,
    reviewer: str,
    approve: bool,
    reason: str,
) -> tuple[JoinRequest, Membership | None]:
    if request is None or request.state is not RequestState.PENDING:
        raise NotFound("there is no pending join request from this user")
    if community.archived_at is not None:
        raise FailedPrecondition(f"community {community.id} is archived")
    now = datetime.now(UTC)
    state = RequestState.APPROVED if approve else RequestState.REJECTED
    reviewed = replace(
        request, state=state, reviewer_user_id=reviewer, reviewed_at=now, reason=reason
    )
    if not approve:
        return reviewed, None
    if current is not None and current.banned(now):
        # A ban decided while the request waited stands: approval is no way round it.
        raise PermissionDenied(f"{request.user_id} is banned from this community; unban them first")
    if current is not None and current.active:
        raise AlreadyExists(f"{request.user_id} is already a member; reject the request instead")
    membership = Membership(
        community_id=community.id,
        user_id=request.user_id,
        role=Role.MEMBER,
        joined_at=now,
        version=(current.version + 1) if current else 1,
        muted_until=current.muted_until if current else None,
        accepted_rules_version=request.accepted_rules_version,
    )
    return reviewed, membership


ASSIGNABLE = (Role.MEMBER, Role.MODERATOR, Role.ADMIN)


def change_role(actor: Membership | None, target: Membership | None, role: Role) -> Membership:
    """Admins set members and moderators; only the owner makes or unmakes admins."""
    if target is None or not target.active:
        raise NotFound("that user is not a member of this community")
    if actor is not None and actor.user_id == target.user_id:
        raise FailedPrecondition("you cannot change your own role; ask another admin")
    if target.role is Role.OWNER:
        raise FailedPrecondition("the owner's role changes only by transferring ownership")
    needed = Role.OWNER if Role.ADMIN in (role, target.role) else Role.ADMIN
    if actor is not None and actor.role < needed:
        raise PermissionDenied(
            f"setting this role needs the {needed.name.lower()} role; "
            f"you are {actor.role.name.lower()}",
        )
    if target.role is role:
        raise FailedPrecondition(f"{target.user_id} is already {role.name.lower()}")
    return replace(target, role=role, version=target.version + 1)


def transfer(
    community: Community, owner: Membership, successor: Membership | None
) -> tuple[Community, Membership, Membership]:
    if successor is None or not successor.active:
        raise NotFound("ownership goes only to an active member")
    if successor.user_id == owner.user_id:
        raise FailedPrecondition("you already own this community")
    if community.archived_at is not None:
        raise FailedPrecondition(f"community {community.id} is archived")
    return (
        replace(community, owner_user_id=successor.user_id, version=community.version + 1),
        replace(owner, role=Role.ADMIN, version=owner.version + 1),
        replace(successor, role=Role.OWNER, version=successor.version + 1),
    )


def join(
    community: Community,
    current: Membership | None,
    user_id: str,
    *,
    accepted_rules: int = 0,
    invited: bool = False,
) -> Membership:
    """A membership; `invited` when the user holds a valid invite, which opens any policy."""
    if community.archived_at is not None:
        raise FailedPrecondition(f"community {community.id} is archived")
    if current is not None and current.active:
        raise AlreadyExists(f"{user_id} is already a member of {community.id}")
    _refuse_banned(current)
    if community.join_policy is not JoinPolicy.OPEN and not invited:
        raise FailedPrecondition(
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
        # A mute outlives leaving and joining again; a lapsed ban is history.
        muted_until=current.muted_until if current else None,
        accepted_rules_version=require_rules_accepted(community, accepted_rules),
    )


def _refuse_banned(current: Membership | None) -> None:
    if current is not None and current.banned(datetime.now(UTC)):
        assert current.banned_until is not None
        until = (
            ""
            if current.banned_until == FOREVER
            else f" until {current.banned_until:%Y-%m-%d %H:%M} UTC"
        )
        raise PermissionDenied(f"you are banned from this community{until}")


def leave(current: Membership | None, community_id: str, user_id: str) -> Membership:
    if current is None or not current.active:
        raise NotFound(f"{user_id} is not a member of {community_id}")
    if current.role is Role.OWNER:
        raise FailedPrecondition(
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
    join_questions: list[str] | None = None,
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
        join_questions=[question.strip() for question in join_questions or []],
    )
    owner = Membership(community_id, owner_user_id, Role.OWNER, community.created_at)
    return community, owner


LOCALE_PATTERN = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def is_time_zone(name: str) -> bool:
    return bool(name) and zone(name) is not None


_SLUG_SEPARATORS = re.compile(r"[^\w]+")


SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def slugify(name: str, *, fallback: str) -> str:
    """An ASCII handle from a name; names with no ASCII letters (e.g. Chinese) get the fallback."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = (
        _SLUG_SEPARATORS.sub("-", ascii_name.lower()).replace("_", "-").strip("-")[:64].strip("-")
    )
    return slug if SLUG_PATTERN.fullmatch(slug) else fallback


MAX_RULES = 30


@dataclass(frozen=True)
class Rule:
    title: str
    body: str


@dataclass(frozen=True)
class RulesVersion:
    community_id: str
    version: int
    rules: list[Rule]
    author_user_id: str
    created_at: datetime


def require_rules_accepted(community: Community, accepted: int) -> int:
    """The version a joining user accepts; refused unless it is the current one."""
    if community.rules_version and accepted != community.rules_version:
        raise FailedPrecondition(
            f"community {community.id} has rules: read version {community.rules_version} "
            f"(GetRules) and join again with accepted_rules_version={community.rules_version}",
        )
    return accepted


def new_rules(
    community: Community, rules: list[Rule], author: str, etag: str
) -> tuple[Community, RulesVersion]:
    """The community with a new rules version, and that version."""
    if community.archived_at is not None:
        raise FailedPrecondition(f"community {community.id} is archived")
    check_etag(community, etag)
    now = datetime.now(UTC)
    changed = replace(
        community, rules_version=community.rules_version + 1, version=community.version + 1
    )
    return changed, RulesVersion(community.id, changed.rules_version, list(rules), author, now)


def accept_rules(community: Community, membership: Membership | None, version: int) -> Membership:
    if membership is None or not membership.active:
        raise NotFound(f"only members of {community.id} accept its rules")
    if community.rules_version == 0:
        raise FailedPrecondition(f"community {community.id} has no rules to accept")
    if version != community.rules_version:
        raise FailedPrecondition(
            f"version {version} is not the current rules of {community.id}; read version "
            f"{community.rules_version} and accept that one",
        )
    return replace(membership, accepted_rules_version=version, version=membership.version + 1)
