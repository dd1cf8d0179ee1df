"""A member's invitations, for ExportMyData and EraseMyData (and MemberErased): erasure
takes the member out of every snapshot (docs/decisions/0015); the invitation keeps its
count."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.invitations.store import InvitationRepository


async def export_invitations(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    return await InvitationRepository(session).of_member(community_id, user_id)


async def forget_invitations(session: AsyncSession, community_id: str, user_id: str) -> None:
    await InvitationRepository(session).forget_member(community_id, user_id)


EXPORTS = {"invitations": export_invitations}
ERASERS = (forget_invitations,)
