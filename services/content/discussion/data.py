"""What discussion holds about a member, for ExportMyData and EraseMyData (and
MemberErased): the comments they wrote and their reactions.

Erasure keeps the comments in their threads under no author (replies and answers others
rely on stay where they are) and removes the member's reactions. With `erase_text` the
service also blanks their comments' text: `erase_comment_text` runs before the erasers,
since it finds the comments by their author.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion.domain import ReactionKind
from services.content.store.search_index import unindex_author
from services.content.store.tables import comments, reactions
from services.kit.database import utc

# The author of a comment whose author erased their data.
ERASED_AUTHOR = ""


async def export_comments(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(comments)
        .where(comments.c.community_id == community_id, comments.c.author_user_id == user_id)
        .order_by(comments.c.created_at, comments.c.id)
    )
    return [
        {
            "id": row.id,
            "post_id": row.post_id,
            "parent_comment_id": row.parent_id or "",
            "body": row.body,
            "is_answer": bool(row.is_answer),
            "create_time": utc(row.created_at),
            "update_time": utc(row.updated_at) if row.updated_at else None,
            "delete_time": utc(row.deleted_at) if row.deleted_at else None,
        }
        for row in rows
    ]


async def export_reactions(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(reactions)
        .where(reactions.c.community_id == community_id, reactions.c.user_id == user_id)
        .order_by(reactions.c.created_at, reactions.c.target_id, reactions.c.kind)
    )
    return [
        {
            "post_id": row.post_id,
            "comment_id": row.comment_id,
            "kind": _kind_name(int(row.kind)),
            "create_time": utc(row.created_at),
        }
        for row in rows
    ]


async def erase_comment_text(session: AsyncSession, community_id: str, user_id: str) -> None:
    """Blank the text of the member's comments; they keep their place in the threads."""
    await unindex_author(session, community_id, user_id)
    await session.execute(
        update(comments)
        .where(
            comments.c.community_id == community_id,
            comments.c.author_user_id == user_id,
            comments.c.body != "",
        )
        .values(body="", version=comments.c.version + 1)
    )


async def remove_comment_authorship(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(comments)
        .where(comments.c.community_id == community_id, comments.c.author_user_id == user_id)
        .values(author_user_id=ERASED_AUTHOR, version=comments.c.version + 1)
    )


async def delete_reactions(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        delete(reactions).where(
            reactions.c.community_id == community_id, reactions.c.user_id == user_id
        )
    )


def _kind_name(kind: int) -> str:
    try:
        return ReactionKind(kind).name.lower()
    except ValueError:
        return str(kind)


EXPORTS = {"comments": export_comments, "reactions": export_reactions}
ERASERS = (remove_comment_authorship, delete_reactions)
