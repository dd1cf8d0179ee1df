"""The facts about posts, staged in content's outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from opentelemetry.context import Context
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts.domain import Post
from services.content.store.outbox import OUTBOX
from services.content.store.tables import comments
from services.kit.events.outbox import Staged
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events
from studyhall.content.v1 import content_service_pb2 as pb


class PostEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def created(self, post: Post) -> None:
        """The post became visible: published at once, or a draft published."""
        await self.created_many([post])

    async def created_many(
        self, posts: Sequence[Post], traces: Sequence[Context | None] = ()
    ) -> None:
        """`traces`: each post's own trace, when several callers' posts commit together; by
        default the current one."""
        staged: list[Staged] = []
        for post, trace in zip(posts, traces or [None] * len(posts), strict=True):
            assert post.published_at is not None
            fact = events.PostCreated(
                community_id=post.community_id,
                post_id=post.id,
                author_user_id=post.author_user_id,
                create_time=timestamp(post.published_at),
                version=post.version,
                kind=pb.PostKind.ValueType(post.kind),
                topic_id=post.topic_id or "",
            )
            staged.append(Staged(fact, post.community_id, _subject(post), trace=trace))
        await OUTBOX.add_many(self.session, staged)

    async def updated(self, post: Post, editor: str, changed: Sequence[str]) -> None:
        assert post.updated_at is not None
        await self._add(
            post,
            events.PostUpdated(
                community_id=post.community_id,
                post_id=post.id,
                editor_user_id=editor,
                changed_fields=list(changed),
                version=post.version,
                update_time=timestamp(post.updated_at),
            ),
        )

    async def deleted(self, post: Post) -> None:
        assert post.deleted_at is not None
        await self._add(
            post,
            events.PostDeleted(
                community_id=post.community_id,
                post_id=post.id,
                author_user_id=post.author_user_id,
                deleted_by_user_id=post.deleted_by or "",
                version=post.version,
                delete_time=timestamp(post.deleted_at),
            ),
        )

    async def withdrawn(self, post: Post, by: str, now: datetime) -> None:
        """A visible post left the community's sight through moderation (held again,
        hidden, removed): its consumers drop it as for a deletion (docs/decisions/0053)."""
        await self._add(
            post,
            events.PostDeleted(
                community_id=post.community_id,
                post_id=post.id,
                author_user_id=post.author_user_id,
                deleted_by_user_id=by,
                version=post.version,
                delete_time=timestamp(now),
            ),
        )

    async def restored(self, post: Post, by: str, now: datetime) -> None:
        await self._add(
            post,
            events.PostRestored(
                community_id=post.community_id,
                post_id=post.id,
                restored_by_user_id=by,
                version=post.version,
                restore_time=timestamp(now),
            ),
        )

    async def pinned(self, post: Post, by: str) -> None:
        assert post.pinned_at is not None
        await self._add(
            post,
            events.PostPinned(
                community_id=post.community_id,
                post_id=post.id,
                pinned_by_user_id=by,
                version=post.version,
                pin_time=timestamp(post.pinned_at),
            ),
        )

    async def unpinned(self, post: Post, by: str, now: datetime) -> None:
        await self._add(
            post,
            events.PostUnpinned(
                community_id=post.community_id,
                post_id=post.id,
                unpinned_by_user_id=by,
                version=post.version,
                unpin_time=timestamp(now),
            ),
        )

    async def scheduled(self, post: Post) -> None:
        assert post.scheduled_at is not None
        await self._add(
            post,
            events.PostScheduled(
                community_id=post.community_id,
                post_id=post.id,
                author_user_id=post.author_user_id,
                scheduled_time=timestamp(post.scheduled_at),
                version=post.version,
            ),
        )

    async def unscheduled(self, post: Post) -> None:
        await self._add(
            post,
            events.PostUnscheduled(
                community_id=post.community_id,
                post_id=post.id,
                author_user_id=post.author_user_id,
                version=post.version,
            ),
        )

    async def missed(self, post: Post) -> None:
        assert post.scheduled_at is not None
        await self._add(
            post,
            events.PostMissed(
                community_id=post.community_id,
                post_id=post.id,
                author_user_id=post.author_user_id,
                scheduled_time=timestamp(post.scheduled_at),
                reason=post.missed_reason,
                version=post.version,
            ),
        )

    async def answer_accepted(
        self, question: Post, answer_id: str, answer_author: str, by: str, now: datetime
    ) -> None:
        """`version` is the question's version after the change, so the newest event about
        a question tells which answer is accepted."""
        await self._add(
            question,
            events.AnswerAccepted(
                community_id=question.community_id,
                question_id=question.id,
                answer_id=answer_id,
                answer_author_user_id=answer_author,
                accepted_by_user_id=by,
                version=question.version,
                accept_time=timestamp(now),
            ),
        )

    async def answer_unaccepted(
        self, question: Post, answer_id: str, answer_author: str, by: str, now: datetime
    ) -> None:
        await self._add(
            question,
            events.AnswerUnaccepted(
                community_id=question.community_id,
                question_id=question.id,
                answer_id=answer_id,
                answer_author_user_id=answer_author,
                unaccepted_by_user_id=by,
                version=question.version,
                unaccept_time=timestamp(now),
            ),
        )

    async def acceptance_ended_with(self, question: Post, by: str) -> None:
        """A question with an accepted answer was deleted: what the answer earned goes back
        (the acceptance is kept, and resumes if the question is restored)."""
        author = await self._accepted_answer_author(question)
        if author is not None:
            assert question.accepted_answer_id is not None
            now = datetime.now(UTC)
            await self.answer_unaccepted(question, question.accepted_answer_id, author, by, now)

    async def acceptance_resumed_with(self, question: Post, by: str) -> None:
        author = await self._accepted_answer_author(question)
        if author is not None:
            assert question.accepted_answer_id is not None
            now = datetime.now(UTC)
            await self.answer_accepted(question, question.accepted_answer_id, author, by, now)

    async def _accepted_answer_author(self, question: Post) -> str | None:
        if question.accepted_answer_id is None:
            return None
        author = await self.session.scalar(
            select(comments.c.author_user_id).where(comments.c.id == question.accepted_answer_id)
        )
        return None if author is None else str(author)

    async def _add(self, post: Post, event: object) -> None:
        await OUTBOX.add(
            self.session,
            event,  # type: ignore[arg-type]
            community_id=post.community_id,
            subject=_subject(post),
        )


def _subject(post: Post) -> str:
    return f"communities/{post.community_id}/posts/{post.id}"
