"""What the communities capability holds about a member: export and erasure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.data_rights import Eraser, Exporter
from services.members.communities.store import (
    CommunityRepository,
    InviteRepository,
    JoinRequestRepository,
    delete_join_request,
)


async def _export_membership(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    membership = await CommunityRepository(session).membership(community_id, user_id)
    if membership is None:
        return None
    return {
        "role": membership.role.name.lower(),
        "active": membership.active,
        "join_time": membership.joined_at,
        "leave_time": membership.left_at,
        "muted_until": membership.muted_until,
        "banned_until": membership.banned_until,
        "accepted_rules_version": membership.accepted_rules_version,
        "version": membership.version,
    }


async def _export_join_request(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    request = await JoinRequestRepository(session).get(community_id, user_id)
    if request is None:
        return None
    return {
        "answers": request.answers,
        "state": request.state.name.lower(),
        "create_time": request.created_at,
        "review_time": request.reviewed_at,
        "reason": request.reason,
        "accepted_rules_version": request.accepted_rules_version,
    }


async def _export_invites(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    return [
        {
            "invite_id": invite.id,
            "code_prefix": invite.code_prefix,
            "create_time": invite.created_at,
            "expire_time": invite.expires_at,
            "max_uses": invite.max_uses,
            "uses": invite.uses,
            "revoke_time": invite.revoked_at,
        }
        for invite in await InviteRepository(session).created_by(community_id, user_id)
    ]


async def _erase_join_request(session: AsyncSession, community_id: str, user_id: str) -> None:
    await delete_join_request(session, community_id, user_id)


async def _erase_invites(session: AsyncSession, community_id: str, user_id: str) -> None:
    await InviteRepository(session).revoke_all_by(community_id, user_id, datetime.now(UTC))


# The sections this capability adds to a member's export, and what erasure runs here.
EXPORTS: dict[str, Exporter] = {
    "membership": _export_membership,
    "join_request": _export_join_request,
    "invites_created": _export_invites,
}
ERASERS: tuple[Eraser, ...] = (_erase_join_request, _erase_invites)
