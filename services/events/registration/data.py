"""A member's registrations, for ExportMyData and EraseMyData (and MemberErased). Erasure
keeps each registration without the member's identity or answers, so seats, waitlists and
attendance still add up."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.registration.domain import Attendance, RegistrationState
from services.events.store.tables import registrations
from services.kit.database import utc


async def export_registrations(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(registrations)
        .where(registrations.c.community_id == community_id, registrations.c.user_id == user_id)
        .order_by(registrations.c.registered_at, registrations.c.id)
    )
    return [
        {
            "id": row.id,
            "activity_id": row.activity_id,
            "state": RegistrationState(row.state).name.lower(),
            "attendance": Attendance(row.attendance).name.lower(),
            "answers": {str(key): str(text) for key, text in row.answers or ()},
            "register_time": utc(row.registered_at),
        }
        for row in rows
    ]


async def anonymise_registrations(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(registrations)
        .where(registrations.c.community_id == community_id, registrations.c.user_id == user_id)
        .values(user_id=None, answers=[], version=registrations.c.version + 1)
    )


EXPORTS = {"registrations": export_registrations}
ERASERS = (anonymise_registrations,)
