"""Posts, their revisions and the feeds, in the content database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, union_all, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from services.content.posts.domain import Media, Post, PostKind, PostState, Revision
from services.content.store.search_index import (
    Document,
    PostText,
    add_documents,
    index_posts,
    post_documents,
)
from services.content.store.tables import comments, post_revisions, posts, reactions
from services.kit.database import utc
from services.kit.paging import Position

# At most this many pinned posts head a feed: announcements, not a second feed.
PINNED_MAX = 20
# Built once: a statement built per post (`.values(...)`) cost more to key than to run.
_INSERT = posts.insert()


class PostRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, post: Post) -> None:
        await self.add_many([post], documents_of(post))

    async def add_many(self, many: Sequence[Post], documents: Sequence[Document]) -> None:
        """Insert new posts with their search documents (documents_of each)."""
        await self.session.execute(_INSERT, [{"id": post.id, **_values(post)} for post in many])
        await add_documents(self.session, documents)

    async def save(self, post: Post) -> None:
        await self.session.execute(
            update(posts).where(posts.c.id == post.id).values(**_values(post))
        )
        # Every change of a post passes here: its search documents follow in the same
        # transaction.
        await index_posts(self.session, [_text(post)])

    async def get(
        self, community_id: str, post_id: str, *, for_update: bool = False
    ) -> Post | None:
        query = select(posts).where(posts.c.community_id == community_id, posts.c.id == post_id)
        if for_update:
            # Concurrent edits of one post take turns: each applies on top of the last.
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return post_from_row(row) if row else None

    async def add_revision(self, revision: Revision) -> None:
        await self.session.execute(
            post_revisions.insert().values(
                post_id=revision.post_id,
                number=revision.number,
                community_id=revision.community_id,
                editor_user_id=revision.editor_user_id,
                edited_at=revision.edited_at,
                changed_fields=revision.changed_fields,
                previous=revision.previous,
            )
        )

    async def revision_count(self, post_id: str) -> int:
        found = await self.session.scalar(
            select(func.count())
            .select_from(post_revisions)
            .where(post_revisions.c.post_id == post_id)
        )
        return int(found or 0)

    async def revisions(self, post_id: str, before: int | None, limit: int) -> list[Revision]:
        query = select(post_revisions).where(post_revisions.c.post_id == post_id)
        if before is not None:
            query = query.where(post_revisions.c.number < before)
        rows = await self.session.execute(
            query.order_by(post_revisions.c.number.desc()).limit(limit)
        )
        return [
            Revision(
                post_id=row.post_id,
                number=int(row.number),
                community_id=row.community_id,
                editor_user_id=row.editor_user_id,
                edited_at=utc(row.edited_at),
                changed_fields=list(row.changed_fields),
                previous=dict(row.previous),
            )
            for row in rows
        ]

    async def newest(
        self, community_id: str, topic_id: str | None, after: Position | None, limit: int
    ) -> list[Post]:
        """Published posts that are not pinned, newest first."""
        query = self._feed(community_id, topic_id).where(posts.c.pinned_at.is_(None))
        if after is not None:
            query = query.where(_before(posts.c.published_at, after))
        rows = await self.session.execute(
            query.order_by(posts.c.published_at.desc(), posts.c.id.desc()).limit(limit)
        )
        return [post_from_row(row) for row in rows]

    async def pinned(self, community_id: str, topic_id: str | None) -> list[Post]:
        rows = await self.session.execute(
            self._feed(community_id, topic_id)
            .where(posts.c.pinned_at.is_not(None))
            .order_by(posts.c.pinned_at.desc(), posts.c.id.desc())
            .limit(PINNED_MAX)
        )
        return [post_from_row(row) for row in rows]

    async def top(
        self,
        community_id: str,
        topic_id: str | None,
        since: datetime,
        after: tuple[int, datetime, str] | None,
        limit: int,
    ) -> list[tuple[Post, int]]:
        """Published posts by their score since `since` (reactions to the post + 2 x
        comments that are not deleted), highest first, ties newest first."""
        activity = union_all(
            select(reactions.c.post_id.label("post_id"), literal(1).label("weight")).where(
                reactions.c.community_id == community_id,
                reactions.c.comment_id == "",
                reactions.c.created_at >= since,
            ),
            select(comments.c.post_id.label("post_id"), literal(2).label("weight")).where(
                comments.c.community_id == community_id,
                comments.c.created_at >= since,
                comments.c.deleted_at.is_(None),
                comments.c.moderation == "visible",
            ),
        ).subquery()
        scores = (
            select(activity.c.post_id, func.sum(activity.c.weight).label("score"))
            .group_by(activity.c.post_id)
            .subquery()
        )
        score = func.coalesce(scores.c.score, 0)
        query = self._feed(community_id, topic_id).add_columns(score.label("score"))
        query = query.outerjoin(scores, scores.c.post_id == posts.c.id)
        if after is not None:
            after_score, published, post_id = after
            query = query.where(
                or_(
                    score < after_score,
                    and_(score == after_score, _before(posts.c.published_at, (published, post_id))),
                )
            )
        rows = await self.session.execute(
            query.order_by(score.desc(), posts.c.published_at.desc(), posts.c.id.desc()).limit(
                limit
            )
        )
        return [(post_from_row(row), int(row.score)) for row in rows]

    async def drafts(
        self, community_id: str, author: str, after: Position | None, limit: int
    ) -> list[Post]:
        query = select(posts).where(
            posts.c.community_id == community_id,
            posts.c.author_user_id == author,
            posts.c.state == int(PostState.DRAFT),
        )
        if after is not None:
            query = query.where(_before(posts.c.created_at, after))
        rows = await self.session.execute(
            query.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(limit)
        )
        return [post_from_row(row) for row in rows]

    async def unanswered(
        self, community_id: str, topic_id: str | None, after: Position | None, limit: int
    ) -> list[Post]:
        """Published questions without an answer, oldest first."""
        query = self._feed(community_id, topic_id).where(
            posts.c.kind == int(PostKind.QUESTION), posts.c.answer_count == 0
        )
        if after is not None:
            published, post_id = after
            query = query.where(
                or_(
                    posts.c.published_at > published,
                    and_(posts.c.published_at == published, posts.c.id > post_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(posts.c.published_at, posts.c.id).limit(limit)
        )
        return [post_from_row(row) for row in rows]

    def _feed(self, community_id: str, topic_id: str | None) -> Any:
        query = select(posts).where(
            posts.c.community_id == community_id, posts.c.state == int(PostState.PUBLISHED)
        )
        if topic_id:
            query = query.where(posts.c.topic_id == topic_id)
        return query


def _before(column: Any, position: Position) -> ColumnElement[bool]:
    moment, item_id = position
    return or_(column < moment, and_(column == moment, posts.c.id < item_id))


def _values(post: Post) -> dict[str, Any]:
    return {
        "community_id": post.community_id,
        "author_user_id": post.author_user_id,
        "kind": int(post.kind),
        "title": post.title,
        "body": post.body,
        "url": post.url,
        "tags": post.tags,
        "created_at": post.created_at,
        "version": post.version,
        "summary": post.summary,
        "topic_id": post.topic_id,
        "media": [item.to_json() for item in post.media],
        "state": int(post.state),
        "published_at": post.published_at,
        "updated_at": post.updated_at,
        "deleted_at": post.deleted_at,
        "deleted_by": post.deleted_by,
        "pinned_at": post.pinned_at,
        "accepted_answer_id": post.accepted_answer_id,
        "answer_count": post.answer_count,
        "first_answer_at": post.first_answer_at,
        "scheduled_at": post.scheduled_at,
        "missed_at": post.missed_at,
        "missed_reason": post.missed_reason,
    }


def documents_of(post: Post) -> list[Document]:
    """The search documents of a new post (none unless published): its text cut into terms,
    which needs no transaction, so CreatePost cuts it before its group's."""
    return post_documents(_text(post))


def _text(post: Post) -> PostText:
    return PostText(
        post_id=post.id,
        community_id=post.community_id,
        published=post.visible,
        title=post.title,
        summary=post.summary,
        tags=post.tags,
        body=post.body,
    )


def _utc_or_none(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def post_from_row(row: Row[Any]) -> Post:
    return Post(
        id=row.id,
        community_id=row.community_id,
        author_user_id=row.author_user_id,
        kind=PostKind(row.kind),
        title=row.title,
        body=row.body,
        url=row.url,
        tags=list(row.tags),
        created_at=utc(row.created_at),
        version=int(row.version),
        summary=row.summary,
        topic_id=row.topic_id,
        media=[Media.from_json(item) for item in row.media or []],
        state=PostState(row.state),
        published_at=_utc_or_none(row.published_at),
        updated_at=_utc_or_none(row.updated_at),
        deleted_at=_utc_or_none(row.deleted_at),
        deleted_by=row.deleted_by,
        pinned_at=_utc_or_none(row.pinned_at),
        accepted_answer_id=row.accepted_answer_id,
        answer_count=int(row.answer_count),
        first_answer_at=_utc_or_none(row.first_answer_at),
        scheduled_at=_utc_or_none(row.scheduled_at),
        missed_at=_utc_or_none(row.missed_at),
        missed_reason=row.missed_reason,
    )


async def posts_by_id(session: AsyncSession, post_ids: Sequence[str]) -> dict[str, Post]:
    if not post_ids:
        return {}
    rows = await session.execute(select(posts).where(posts.c.id.in_(list(post_ids))))
    return {row.id: post_from_row(row) for row in rows}
