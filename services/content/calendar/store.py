"""What the content calendar reads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts.domain import Post, PostState
from services.content.posts.store import post_from_row
from services.content.store.tables import posts

# A calendar shows at most this many posts; a span that holds more is asked in parts.
MAX_ENTRIES = 1000


async def posts_in_span(
    session: AsyncSession, community_id: str, start: datetime, end: datetime
) -> list[Post]:
    """Drafts scheduled in [start, end) and posts that went live in it."""
    rows = await session.execute(
        select(posts)
        .where(
            posts.c.community_id == community_id,
            or_(
                and_(
                    posts.c.state == int(PostState.DRAFT),
                    posts.c.scheduled_at >= start,
                    posts.c.scheduled_at < end,
                ),
                and_(
                    posts.c.state == int(PostState.PUBLISHED),
                    posts.c.published_at >= start,
                    posts.c.published_at < end,
                ),
            ),
        )
        .limit(MAX_ENTRIES)
    )
    return [post_from_row(row) for row in rows]
