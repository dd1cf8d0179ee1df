"""A member's profile and check-ins in their data export, and what erasure removes: the
profile with its custom values, and the notes of their check-ins (the days stay, as the
streak and points they earned)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.data_rights import Eraser, Exporter
from services.members.personas.profiles import Birthday
from services.members.personas.store import ProfileRepository


async def export_profile(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    profile = await ProfileRepository(session).get(community_id, user_id)
    if profile.version == 0:
        return None
    return {
        "interests": list(profile.interests),
        "learning_goals": list(profile.learning_goals),
        "level": profile.level.name.lower() if profile.level else None,
        "time_zone": profile.time_zone,
        "birthday": _birthday(profile.birthday),
        "birthday_visible": profile.birthday_visible,
        "attributes": {
            key: value if isinstance(value, str | float | bool) else value.isoformat()
            for key, value in profile.attributes.items()
        },
        "version": profile.version,
        "update_time": profile.updated_at,
    }


async def erase_profile(session: AsyncSession, community_id: str, user_id: str) -> None:
    await ProfileRepository(session).erase(community_id, user_id)


def _birthday(birthday: Birthday | None) -> dict[str, int] | None:
    if birthday is None:
        return None
    return {"month": birthday.month, "day": birthday.day, "year": birthday.year}


# The sections this capability adds to a member's export, and what erasure runs here.
EXPORTS: dict[str, Exporter] = {
    "profile": export_profile,
}
ERASERS: tuple[Eraser, ...] = (erase_profile,)
