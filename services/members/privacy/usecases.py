"""A member's data rights across the members service: every capability that holds member
data is listed here, and export and erasure go through each of them.

Erasure keeps what the community needs to stay safe and accountable: a running ban or
mute (user id and its end) and the audit log's entries. A capability package with member
tables and no entry here fails `tests/unit/test_members_data_holders.py`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import data_rights
from services.kit.data_rights import DataHolder
from services.members.care import data as care_data
from services.members.checkins import data as checkins_data
from services.members.communities import data as communities_data
from services.members.moderation import data as moderation_data
from services.members.personas import data as personas_data
from services.members.recognition import data as recognition_data
from services.members.segments import data as segments_data

HOLDERS: tuple[DataHolder, ...] = (
    communities_data,
    moderation_data,
    personas_data,
    checkins_data,
    recognition_data,
    segments_data,
    care_data,
)
data_rights.check_holders(HOLDERS)

CONTENT_TYPE = data_rights.CONTENT_TYPE


async def export_document(session: AsyncSession, community_id: str, user_id: str) -> bytes:
    return await data_rights.export_document(session, HOLDERS, community_id, user_id)


async def erase_all(session: AsyncSession, community_id: str, user_id: str) -> None:
    await data_rights.erase_all(session, HOLDERS, community_id, user_id)
