"""Comments, reactions and the answer counters of questions, in the content database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion.domain import VISIBLE, Comment
from services.content.store.search_index import index_comment
from services.content.store.tables import comments, posts, reactions
from services.kit.database import insert_for, utc
from services.kit.paging import Position


class CommentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, comment: Comment) -> None:
        await self.session.execute(comments.insert().values(id=comment.id, **_values(comment)))
        await _index(self.session, comment)

    async def save(self, comment: Comment) -> None:
        await self.session.execute(
            update(comments).where(comments.c.id == comment.id).values(**_values(comment))
        )
        await _index(self.session, comment)

    async def get(
        self, community_id: str, comment_id: str, *, for_update: bool = False
    ) -> Comment | None:
        query = select(comments).where(
            comments.c.community_id == community_id, comments.c.id == comment_id
        )
        if for_update:
            # Concurrent changes of one comment take turns: each sees the last one's result.
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return comment_from_row(row) if row else None

    async def thread(
        self,
        community_id: str,
        post_id: str,
        parent_id: str | None,
        after: Position | None,
        limit: int,
        viewer: str | None = None,
    ) -> list[Comment]:
        """A post's top-level comments, or one comment's replies, oldest first; deleted
        ones too (they keep their place). `viewer`: a reader who does not moderate, who
        sees held, hidden and removed comments of their own only."""
        query = select(comments).where(
            comments.c.community_id == community_id,
            comments.c.post_id == post_id,
            comments.c.parent_id.is_(None)
            if parent_id is None
            else comments.c.parent_id == parent_id,
        )
        if viewer is not None:
            query = query.where(
                or_(comments.c.moderation == VISIBLE, comments.c.author_user_id == viewer)
            )
        if after is not None:
            created, comment_id = after
            query = query.where(
                or_(
                    comments.c.created_at > created,
                    and_(comments.c.created_at == created, comments.c.id > comment_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(comments.c.created_at, comments.c.id).limit(limit)
        )
        return [comment_from_row(row) for row in rows]

    async def count_answer(self, question_id: str, now: datetime) -> None:
        """One more answer to the question; the first sets its first answer's time. One
        statement, so concurrent answers all count."""
        await self.session.execute(
            update(posts)
            .where(posts.c.id == question_id)
            .values(
                answer_count=posts.c.answer_count + 1,
                first_answer_at=func.coalesce(posts.c.first_answer_at, now),
            )
        )

    async def uncount_answer(self, question_id: str) -> None:
        """One answer fewer (a deleted one); when the first answer came stays as it was."""
        await self.session.execute(
            update(posts)
            .where(posts.c.id == question_id, posts.c.answer_count > 0)
            .values(answer_count=posts.c.answer_count - 1)
        )


class ReactionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        community_id: str,
        post_id: str,
        comment_id: str,
        user_id: str,
        kind: int,
        now: datetime,
    ) -> bool:
        """Record a member's reaction of one kind to a post or comment; False when it was
        there already. The primary key decides, so concurrent calls count once."""
        values = {
            "target_id": comment_id or post_id,
            "user_id": user_id,
            "kind": kind,
            "community_id": community_id,
            "post_id": post_id,
            "comment_id": comment_id,
            "created_at": now,
        }
        dialect = self.session.get_bind().dialect.name
        insert = insert_for(dialect)
        result: Any = await self.session.execute(
            insert(reactions).values(**values).on_conflict_do_nothing()
        )
        return bool(result.rowcount)

    async def remove(self, *, target_id: str, user_id: str, kind: int) -> bool:
        """Take a member's reaction back; False when there was none."""
        result: Any = await self.session.execute(
            delete(reactions).where(
                reactions.c.target_id == target_id,
                reactions.c.user_id == user_id,
                reactions.c.kind == kind,
            )
        )
        return bool(result.rowcount)


def _values(comment: Comment) -> dict[str, Any]:
    return {
        "community_id": comment.community_id,
        "post_id": comment.post_id,
        "parent_id": comment.parent_id,
        "author_user_id": comment.author_user_id,
        "body": comment.body,
        "is_answer": comment.is_answer,
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "deleted_at": comment.deleted_at,
        "deleted_by": comment.deleted_by,
        "version": comment.version,
        "moderation": comment.moderation,
        "shown": comment.shown,
    }


async def _index(session: AsyncSession, comment: Comment) -> None:
    # Search finds what the community sees: not a deleted, held, hidden or removed comment.
    body = "" if comment.deleted_at is not None or not comment.visible else comment.body
    await index_comment(session, comment.id, comment.post_id, comment.community_id, body)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def comment_from_row(row: Row[Any]) -> Comment:
    return Comment(
        id=row.id,
        community_id=row.community_id,
        post_id=row.post_id,
        parent_id=row.parent_id,
        author_user_id=row.author_user_id,
        body=row.body,
        is_answer=bool(row.is_answer),
        created_at=utc(row.created_at),
        version=int(row.version),
        updated_at=_utc_or_none(row.updated_at),
        deleted_at=_utc_or_none(row.deleted_at),
        deleted_by=row.deleted_by,
        moderation=row.moderation,
        shown=bool(row.shown),
    )
