"""What members did with posts and comments, counted when read: reactions per kind, and
comments and replies that are not deleted. Counting rows that a primary key keeps unique
is what keeps the counts right under concurrent reactions (there is no counter to race)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import comments, reactions


async def reaction_counts(
    session: AsyncSession, target_ids: Sequence[str]
) -> dict[str, dict[int, int]]:
    """Per post or comment id: reactions per kind."""
    counts: dict[str, dict[int, int]] = defaultdict(dict)
    if not target_ids:
        return counts
    rows = await session.execute(
        select(reactions.c.target_id, reactions.c.kind, func.count())
        .where(reactions.c.target_id.in_(list(target_ids)))
        .group_by(reactions.c.target_id, reactions.c.kind)
    )
    for target_id, kind, count in rows:
        counts[target_id][int(kind)] = int(count)
    return counts


async def comment_counts(session: AsyncSession, post_ids: Sequence[str]) -> dict[str, int]:
    """Per post id: its comments and replies that are not deleted."""
    if not post_ids:
        return {}
    rows = await session.execute(
        select(comments.c.post_id, func.count())
        .where(
            comments.c.post_id.in_(list(post_ids)),
            comments.c.deleted_at.is_(None),
            comments.c.moderation == "visible",
        )
        .group_by(comments.c.post_id)
    )
    return {post_id: int(count) for post_id, count in rows}


async def reply_counts(session: AsyncSession, comment_ids: Sequence[str]) -> dict[str, int]:
    """Per top-level comment id: its replies that are not deleted."""
    if not comment_ids:
        return {}
    rows = await session.execute(
        select(comments.c.parent_id, func.count())
        .where(
            comments.c.parent_id.in_(list(comment_ids)),
            comments.c.deleted_at.is_(None),
            comments.c.moderation == "visible",
        )
        .group_by(comments.c.parent_id)
    )
    return {parent_id: int(count) for parent_id, count in rows}
