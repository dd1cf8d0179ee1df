"""Who may act in a community: the community as the caller may see it, and the caller's
role in it. Every capability's API asks these before acting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity
from services.kit.errors import FailedPrecondition, NotFound, PermissionDenied
from services.members.communities import domain
from services.members.communities.store import CommunityRepository

# Whether a member's level grants a privilege in a community (session, community id, user
# id, privilege). Recognition knows; the app hands it to the capabilities that ask.
HoldsPrivilege = Callable[[AsyncSession, str, str, str], Awaitable[bool]]


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


def require_writable(community: domain.Community, what: str) -> None:
    """An archived community is read-only: nothing in it changes, for anyone (leaving it and
    a member's own data rights excepted, which do not go through here)."""
    if community.archived_at is not None:
        raise FailedPrecondition(
            f"community {community.id} is archived: it is read-only, so {what} is refused"
        )
