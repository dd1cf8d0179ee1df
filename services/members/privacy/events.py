"""The fact of a member's data erased, for every service to erase its own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.timestamps import timestamp
from services.members.communities.domain import Membership
from services.members.communities.events import membership_subject
from services.members.store.outbox import OUTBOX
from studyhall.members.v1 import members_events_pb2 as events


class PrivacyEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def member_erased(self, membership: Membership, erased_at: datetime) -> None:
        await OUTBOX.add(
            self.session,
            events.MemberErased(
                community_id=membership.community_id,
                user_id=membership.user_id,
                version=membership.version,
                erase_time=timestamp(erased_at),
            ),
            community_id=membership.community_id,
            subject=membership_subject(membership),
        )
