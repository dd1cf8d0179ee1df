"""The care signals sent about a member, in their export; erasure removes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.data_rights import Eraser, Exporter
from services.members.care.store import CareRepository


async def export_care_signals(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    found = await CareRepository(session).listing(community_id, user_id=user_id)
    return [
        {
            "kind": signal.kind,
            "local_date": signal.local_date.isoformat(),
            "days": signal.days,
            "occasion": signal.occasion,
            "holiday_name": signal.holiday_name,
            "event_id": signal.event_id,
            "create_time": signal.created_at,
        }
        for signal in found
    ]


async def erase_care_signals(session: AsyncSession, community_id: str, user_id: str) -> None:
    await CareRepository(session).erase(community_id, user_id)


# The sections this capability adds to a member's export, and what erasure runs here.
EXPORTS: dict[str, Exporter] = {
    "care_signals": export_care_signals,
}
ERASERS: tuple[Eraser, ...] = (erase_care_signals,)
