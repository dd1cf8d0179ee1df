"""Rules of moderating a member: mute, ban, remove and their lifting, by rank."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from enum import IntEnum

from services.kit.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.members.communities.domain import FOREVER, Community, Membership, Role


class Action(IntEnum):
    REMOVE = 1
    BAN = 2
    UNBAN = 3
    MUTE = 4
    UNMUTE = 5


def moderate(
    community: Community,
    actor: Membership | None,
    target: Membership | None,
    user_id: str,
    action: Action,
    until: datetime | None,
) -> Membership:
    """Apply a moderator's action. `actor` None is a platform operator."""
    now = datetime.now(UTC)
    if until is not None and until <= now:
        raise InvalidArgument.field("until", "the end of a ban or mute must be in the future")
    if target is not None and target.role is Role.OWNER:
        raise PermissionDenied("nobody moderates the owner")
    if actor is not None and target is not None and target.active and actor.role <= target.role:
        raise PermissionDenied(
            f"a {actor.role.name.lower()} cannot moderate a {target.role.name.lower()}",
        )
    if action is Action.BAN:
        base = target or Membership(
            community.id, user_id, Role.MEMBER, now, active=False, version=0
        )
        return replace(
            base,
            active=False,
            left_at=now if base.active else base.left_at,
            banned_until=until or FOREVER,
            version=base.version + 1,
        )
    if target is None:
        raise NotFound(f"{user_id} is not a member of {community.id}")
    if action is Action.UNBAN:
        if not target.banned(now):
            raise FailedPrecondition(f"{user_id} is not banned")
        return replace(target, banned_until=None, version=target.version + 1)
    if not target.active:
        raise NotFound(f"{user_id} is not a member of {community.id}")
    if action is Action.REMOVE:
        return replace(target, active=False, left_at=now, version=target.version + 1)
    if action is Action.MUTE:
        return replace(target, muted_until=until or FOREVER, version=target.version + 1)
    if not target.muted(now):
        raise FailedPrecondition(f"{user_id} is not muted")
    return replace(target, muted_until=None, version=target.version + 1)
