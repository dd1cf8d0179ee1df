"""What every members API checks before acting: the community, the caller's standing in it,
and how a refused rule becomes a status. Shared by the API modules of the members service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from services.kit.auth import Identity
from services.kit.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.members import domain
from services.members.store.repository import CommunityRepository

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


async def community_for(
    communities: CommunityRepository, community_id: str, caller: Identity
) -> domain.Community:
    community = await communities.get(community_id)
    if community is None:
        raise NotFound(f"community {community_id} not found")
    if not community.visible_to_outsiders() and not caller.operator:
        membership = await communities.membership(community_id, caller.user_id)
        if membership is None or not membership.active:
            raise NotFound(f"community {community_id} not found")
    return community


async def require_role(
    communities: CommunityRepository,
    community: domain.Community,
    caller: Identity,
    minimum: domain.Role,
    what: str,
) -> None:
    if caller.operator:
        return
    membership = await communities.membership(community.id, caller.user_id)
    held = membership.role if membership and membership.active else None
    if held is None or held < minimum:
        raise PermissionDenied(
            f"{what} needs the {minimum.name.lower()} role or higher in community "
            f"{community.id}; you are {held.name.lower() if held else 'not a member'}"
        )


REFUSALS: dict[str, Callable[[str], DomainError]] = {
    "already_member": AlreadyExists,
    "not_open": FailedPrecondition,
    "not_member": NotFound,
    "owner_cannot_leave": FailedPrecondition,
    "archived": FailedPrecondition,
    "stale": FailedPrecondition,
    "already_requested": AlreadyExists,
    "answers": lambda message: InvalidArgument([FieldViolation("answers", message)]),
    "no_request": NotFound,
    "own_role": FailedPrecondition,
    "owner_role": FailedPrecondition,
    "same_role": FailedPrecondition,
    "denied": PermissionDenied,
    "banned": PermissionDenied,
    "until_past": lambda message: InvalidArgument([FieldViolation("until", message)]),
    # Members I: invites, rules, reports.
    "rules_not_accepted": FailedPrecondition,
    "no_rules": FailedPrecondition,
    "rules_outdated": FailedPrecondition,
    "invite_expiry": lambda message: InvalidArgument([FieldViolation("expire_time", message)]),
    "no_invite": NotFound,
    "invite_revoked": FailedPrecondition,
    "invite_unusable": FailedPrecondition,
    "self_report": lambda message: InvalidArgument([FieldViolation("target_user_id", message)]),
    "no_report": NotFound,
    "report_closed": FailedPrecondition,
    "resolution": lambda message: InvalidArgument([FieldViolation("resolution", message)]),
    "no_subject": FailedPrecondition,
    "not_appealable": FailedPrecondition,
    # Members II B: points, levels.
    "amount": lambda message: InvalidArgument([FieldViolation("amount", message)]),
    "self_kudos": lambda message: InvalidArgument([FieldViolation("user_id", message)]),
    "kudos_muted": PermissionDenied,
    "no_privilege": PermissionDenied,
    "levels": lambda message: InvalidArgument([FieldViolation("levels", message)]),
    # Members II A: personas, segments, check-ins.
    "attribute_exists": AlreadyExists,
    "too_many_attributes": FailedPrecondition,
    "attribute_retired": FailedPrecondition,
    "checked_in": AlreadyExists,
    "grace": lambda message: InvalidArgument([FieldViolation("grace_days", message)]),
}


def apply(change: Callable[[], T]) -> T:
    """Run a domain rule, turning its refusal into the matching status."""
    try:
        return change()
    except domain.Refused as error:
        raise REFUSALS[error.code](error.message) from None


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
