"""What moderation learns from content's facts: which posts exist, in which community, and
who wrote them. A report about a post is checked against this, never against the reporter's
word (docs/decisions/0020-reports-resolved-against-facts.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from services.members.moderation.store import KnownPost, PostRepository
from studyhall.content.v1 import content_events_pb2 as content_events


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            name="members-moderation-content",
            source_service="content",
            event_types=(content_events.PostCreated,),
            apply=apply,
        )
    ]


async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
    """Record the posts of a batch; a redelivered or older fact changes nothing."""
    await PostRepository(session).record(
        [
            KnownPost(
                community_id=event.community_id,
                post_id=event.post_id,
                author_user_id=event.author_user_id,
                version=int(event.version),
            )
            for event, _envelope in batch
        ]
    )
