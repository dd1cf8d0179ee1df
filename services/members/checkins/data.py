"""A member's check-ins in their export; erasure removes their notes (the days stay, as
the streak and points they earned)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.data_rights import Eraser, Exporter
from services.members.checkins.store import CheckinRepository


async def export_checkins(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    found = await CheckinRepository(session).listing(community_id, user_id, before=None, limit=None)
    return [
        {
            "checkin_id": checkin.id,
            "local_date": checkin.local_date.isoformat(),
            "time_zone": checkin.time_zone,
            "note": checkin.note,
            "checkin_time": checkin.created_at,
        }
        for checkin in found
    ]


async def erase_checkin_notes(session: AsyncSession, community_id: str, user_id: str) -> None:
    await CheckinRepository(session).erase_notes(community_id, user_id)


# The sections this capability adds to a member's export, and what erasure runs here.
EXPORTS: dict[str, Exporter] = {
    "checkins": export_checkins,
}
ERASERS: tuple[Eraser, ...] = (erase_checkin_notes,)
