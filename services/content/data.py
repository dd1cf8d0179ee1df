"""What content holds about a member, for ExportMyData and EraseMyData (and MemberErased).

The posts a member wrote are exported whole. Erasure removes their authorship and keeps
the posts: a question keeps its answers and a thread its replies, which other members
wrote and rely on (docs/decisions/0016-data-rights-across-services.md). A member who
wants a post gone deletes it before erasing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.domain import PostKind
from services.content.store.tables import posts
from services.kit.database import utc

# The author of a post whose author erased their data.
ERASED_AUTHOR = ""


async def export_posts(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(posts)
        .where(posts.c.community_id == community_id, posts.c.author_user_id == user_id)
        .order_by(posts.c.created_at, posts.c.id)
    )
    return [
        {
            "id": row.id,
            "kind": PostKind(row.kind).name.lower(),
            "title": row.title,
            "body": row.body,
            "url": row.url,
            "tags": list(row.tags),
            "create_time": utc(row.created_at),
        }
        for row in rows
    ]


async def remove_authorship(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(posts)
        .where(posts.c.community_id == community_id, posts.c.author_user_id == user_id)
        .values(author_user_id=ERASED_AUTHOR, version=posts.c.version + 1)
    )


EXPORTS = {"posts": export_posts}
ERASERS = (remove_authorship,)
