"""The facts the content service publishes, staged in its outbox in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.domain import Post
from services.content.store.tables import outbox
from services.kit.events.outbox import Outbox
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events

OUTBOX = Outbox(outbox, "content")


async def post_created(session: AsyncSession, post: Post) -> None:
    await OUTBOX.add(
        session,
        events.PostCreated(
            community_id=post.community_id,
            post_id=post.id,
            author_user_id=post.author_user_id,
            create_time=timestamp(post.created_at),
            version=post.version,
        ),
        community_id=post.community_id,
        subject=f"communities/{post.community_id}/posts/{post.id}",
    )
