"""ContentViewed, staged in content's outbox in the transaction that records the views."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.outbox import OUTBOX
from services.content.views.store import View
from services.kit.events.outbox import Staged
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events


async def viewed(session: AsyncSession, views: Sequence[View]) -> None:
    await OUTBOX.add_many(
        session,
        [
            Staged(
                events.ContentViewed(
                    community_id=view.community_id,
                    post_id=view.post_id,
                    user_id=view.user_id,
                    local_date=view.local_date,
                    view_time=timestamp(view.viewed_at),
                ),
                view.community_id,
                f"communities/{view.community_id}/posts/{view.post_id}",
            )
            for view in views
        ],
    )
