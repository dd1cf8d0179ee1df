"""The facts about paid content, staged in content's outbox in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events


class PaidEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def product_changed(
        self, community_id: str, post_id: str, product_id: str, by: str, now: datetime
    ) -> None:
        await OUTBOX.add(
            self.session,
            events.PostProductChanged(
                community_id=community_id,
                post_id=post_id,
                product_id=product_id,
                changed_by_user_id=by,
                change_time=timestamp(now),
            ),
            community_id=community_id,
            subject=f"communities/{community_id}/posts/{post_id}",
        )
