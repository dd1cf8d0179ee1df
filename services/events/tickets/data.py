"""Events' copy of a member's ticket entitlements, for ExportMyData and EraseMyData (and
MemberErased): erasure deletes it (billing keeps the record of the sale)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.tickets.store import TicketEntitlements


async def export_tickets(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    return await TicketEntitlements(session).of_member(community_id, user_id)


async def forget_tickets(session: AsyncSession, community_id: str, user_id: str) -> None:
    await TicketEntitlements(session).forget_member(community_id, user_id)


EXPORTS = {"ticket_entitlements": export_tickets}
ERASERS = (forget_tickets,)
