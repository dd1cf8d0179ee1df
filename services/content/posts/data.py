"""What content holds about a member in posts, for ExportMyData and EraseMyData (and
MemberErased).

The posts a member wrote (drafts and deleted ones too) and the revisions they made are
exported whole. Erasure removes their authorship and keeps the posts: a question keeps its
answers and a thread its replies, which other members wrote and rely on
(docs/decisions/0016-data-rights-across-services.md). `erase_text`, when asked, also blanks
what they wrote, revisions included.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts.domain import Media, PostKind, PostState
from services.content.store.search_index import unindex_author
from services.content.store.tables import post_revisions, posts
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
            "state": PostState(row.state).name.lower(),
            "title": row.title,
            "summary": row.summary,
            "body": row.body,
            "url": row.url,
            "tags": list(row.tags),
            "topic_id": row.topic_id,
            "media": [Media.from_json(item).to_json() for item in row.media or []],
            "create_time": utc(row.created_at),
            "publish_time": utc(row.published_at) if row.published_at else None,
            "delete_time": utc(row.deleted_at) if row.deleted_at else None,
        }
        for row in rows
    ]


async def export_revisions(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(post_revisions)
        .where(
            post_revisions.c.community_id == community_id,
            post_revisions.c.editor_user_id == user_id,
        )
        .order_by(post_revisions.c.edited_at, post_revisions.c.post_id, post_revisions.c.number)
    )
    return [
        {
            "post_id": row.post_id,
            "number": int(row.number),
            "edit_time": utc(row.edited_at),
            "changed_fields": list(row.changed_fields),
            "previous": dict(row.previous),
        }
        for row in rows
    ]


async def remove_authorship(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(posts)
        .where(posts.c.community_id == community_id, posts.c.author_user_id == user_id)
        .values(author_user_id=ERASED_AUTHOR, version=posts.c.version + 1)
    )
    await session.execute(
        update(post_revisions)
        .where(
            post_revisions.c.community_id == community_id,
            post_revisions.c.editor_user_id == user_id,
        )
        .values(editor_user_id=ERASED_AUTHOR)
    )


async def erase_post_text(session: AsyncSession, community_id: str, user_id: str) -> None:
    """Blank what the member wrote in their posts and its history; runs before their
    authorship is removed, since it finds the posts by author."""
    mine = select(posts.c.id).where(
        posts.c.community_id == community_id, posts.c.author_user_id == user_id
    )
    # Search forgets the text too (before the authorship it finds it by goes).
    await unindex_author(session, community_id, user_id)
    await session.execute(
        update(post_revisions).where(post_revisions.c.post_id.in_(mine)).values(previous={})
    )
    await session.execute(
        update(posts)
        .where(posts.c.community_id == community_id, posts.c.author_user_id == user_id)
        .values(title="", summary="", body="", url="", media=[], version=posts.c.version + 1)
    )


EXPORTS = {"posts": export_posts, "post_revisions": export_revisions}
ERASERS = (remove_authorship,)
