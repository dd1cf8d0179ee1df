"""The facts about topics, staged in content's outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.outbox import OUTBOX
from services.content.topics.domain import Topic
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events


class TopicEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def created(self, topic: Topic) -> None:
        await OUTBOX.add(
            self.session,
            events.TopicCreated(
                community_id=topic.community_id,
                topic_id=topic.id,
                created_by_user_id=topic.created_by,
                version=topic.version,
                create_time=timestamp(topic.created_at),
            ),
            community_id=topic.community_id,
            subject=f"communities/{topic.community_id}/topics/{topic.id}",
        )

    async def updated(self, topic: Topic, by: str, changed: Sequence[str], now: datetime) -> None:
        await OUTBOX.add(
            self.session,
            events.TopicUpdated(
                community_id=topic.community_id,
                topic_id=topic.id,
                updated_by_user_id=by,
                changed_fields=list(changed),
                version=topic.version,
                update_time=timestamp(now),
            ),
            community_id=topic.community_id,
            subject=f"communities/{topic.community_id}/topics/{topic.id}",
        )
