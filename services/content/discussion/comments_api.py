"""gRPC handlers for comments: on posts, replies to them (one level), answers to questions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion import domain
from services.content.discussion.domain import Comment
from services.content.discussion.events import DiscussionEvents
from services.content.discussion.messages import comment_to_proto
from services.content.discussion.store import CommentRepository
from services.content.posts.domain import Post, carries_links
from services.content.posts.events import PostEvents
from services.content.posts.store import PostRepository
from services.content.store.engagement import reaction_counts, reply_counts
from services.kit.access import Access, Role
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb


class Screening(Protocol):
    """Keyword rules (handed in by app.py): refuses a text holding a watched phrase (an edit
    holding a phrase that holds too); says why a new comment is held."""

    async def check(
        self, community_id: str, fields: Mapping[str, str], *, holds: bool = False
    ) -> None: ...

    async def hold_reason(self, community_id: str, fields: Mapping[str, str]) -> str | None: ...


# Moderation (handed in by app.py): records that a keyword rule held `comment`, with why.
Holding = Callable[[AsyncSession, Comment, str], Awaitable[None]]


class CommentsApi:
    """Comments and replies: adding, editing and deleting them, and reading a thread."""

    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        screen: Screening | None = None,
        holding: Holding | None = None,
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        self.screen = screen
        # Moderation: a comment a keyword rule holds goes into review (decision 0055).
        self.holding = holding

    async def AddComment(
        self, request: pb.AddCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddCommentResponse:
        caller = current_identity()
        community_id = request.community_id
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        _check_body(problems, request.body)
        problems.raise_if_any()
        moderator = await self._may_speak(community_id, caller, "commenting")
        if carries_links("", request.body):
            await self._may_link(community_id, caller)
        hold: str | None = None
        if self.screen is not None:
            texts = {"body": request.body}
            await self.screen.check(community_id, texts, holds=self.holding is not None)
            if self.holding is not None:
                hold = await self.screen.hold_reason(community_id, texts)

        async def add(session: AsyncSession) -> pb.AddCommentResponse:
            now = datetime.now(UTC)
            post = await PostRepository(session).get(community_id, request.post_id)
            post = domain.seen(post, request.post_id, community_id, caller.user_id, moderator)
            domain.open_for_discussion(post)
            comments = CommentRepository(session)
            parent = None
            if request.parent_comment_id:
                parent = await comments.get(community_id, request.parent_comment_id)
                if parent is None:
                    raise domain.comment_not_found(request.parent_comment_id, community_id)
            comment = domain.new_comment(
                post=post,
                author_user_id=caller.user_id,
                body=request.body,
                parent=parent,
                now=now,
                held=hold is not None,
            )
            await comments.add(comment)
            if hold is not None and self.holding is not None:
                # Counted and told (CommentAdded) when a moderator approves it.
                await self.holding(session, comment, hold)
                return pb.AddCommentResponse(comment=comment_to_proto(comment))
            if comment.is_answer:
                await comments.count_answer(post.id, now)
            await DiscussionEvents(session).comment_added(comment)
            return pb.AddCommentResponse(comment=comment_to_proto(comment))

        return await self.writer.write(caller.user_id, request, pb.AddCommentResponse, add)

    async def UpdateComment(
        self, request: pb.UpdateCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateCommentResponse:
        caller = current_identity()
        community_id = request.community_id
        problems = Violations()
        problems.uuid("comment_id", request.comment_id)
        _check_body(problems, request.body)
        problems.raise_if_any()
        moderator = await self._may_speak(community_id, caller, "editing a comment")
        if carries_links("", request.body):
            await self._may_link(community_id, caller)
        if self.screen is not None:
            await self.screen.check(community_id, {"body": request.body})

        async def change(session: AsyncSession) -> pb.UpdateCommentResponse:
            comments = CommentRepository(session)
            comment, post = await _load(
                session, community_id, request.comment_id, caller, moderator
            )
            edited = domain.edit(
                comment,
                caller.user_id,
                request.body,
                request.etag,
                datetime.now(UTC),
                operator=caller.operator,
            )
            domain.open_for_discussion(post)
            if edited is not comment:
                await comments.save(edited)
                await DiscussionEvents(session).comment_edited(edited)
            return pb.UpdateCommentResponse(comment=await _full(session, edited, post))

        return await self.writer.write(caller.user_id, request, pb.UpdateCommentResponse, change)

    async def DeleteComment(
        self, request: pb.DeleteCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteCommentResponse:
        caller = current_identity()
        community_id = request.community_id
        problems = Violations()
        problems.uuid("comment_id", request.comment_id)
        problems.raise_if_any()
        standing = await self.access.require_reader(community_id, caller)
        moderator = domain.moderates(standing.role, caller.operator)

        async def remove(session: AsyncSession) -> pb.DeleteCommentResponse:
            now = datetime.now(UTC)
            comments = CommentRepository(session)
            comment, post = await _load(
                session, community_id, request.comment_id, caller, moderator
            )
            # Whose comment it is decides the role needed, which a caller is told first.
            if comment.author_user_id != caller.user_id:
                await self.access.require_role(
                    community_id, caller, Role.MODERATOR, "deleting another member's comment"
                )
            await self._may_speak(community_id, caller, "deleting a comment")
            deleted = domain.delete(comment, caller.user_id, now)
            await comments.save(deleted)
            happened = DiscussionEvents(session)
            await happened.comment_deleted(deleted)
            if deleted.is_answer:
                # Counted in one statement first; the question is read (and locked) after it,
                # so saving it keeps the count.
                await comments.uncount_answer(post.id)
                posts = PostRepository(session)
                question = await posts.get(community_id, post.id, for_update=True)
                if question is not None and question.accepted_answer_id == comment.id:
                    post = domain.unaccept(question)
                    await posts.save(post)
                    await PostEvents(session).answer_unaccepted(
                        post, comment.id, comment.author_user_id, caller.user_id, now
                    )
            return pb.DeleteCommentResponse(comment=await _full(session, deleted, post))

        return await self.writer.write(caller.user_id, request, pb.DeleteCommentResponse, remove)

    async def ListComments(
        self, request: pb.ListCommentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCommentsResponse:
        caller = current_identity()
        community_id = request.community_id
        parent_id = request.parent_comment_id
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        page = read_page(problems, request, ["comments", community_id, request.post_id, parent_id])
        problems.raise_if_any()
        standing = await self.access.require_reader(community_id, caller)
        moderator = domain.moderates(standing.role, caller.operator)
        async with self.database.read() as session:
            post = await PostRepository(session).get(community_id, request.post_id)
            post = domain.seen(post, request.post_id, community_id, caller.user_id, moderator)
            comments = CommentRepository(session)
            if parent_id:
                parent = await comments.get(community_id, parent_id)
                if parent is None:
                    raise domain.comment_not_found(parent_id, community_id)
                domain.check_thread(parent, post.id)
            found = await comments.thread(
                community_id,
                post.id,
                parent_id or None,
                page.after,
                page.size + 1,
                viewer=None if moderator else caller.user_id,
            )
            listed, token = page_of(found, page, lambda comment: (comment.created_at, comment.id))
            ids = [comment.id for comment in listed]
            reactions = await reaction_counts(session, ids)
            replies = {} if parent_id else await reply_counts(session, ids)
        return pb.ListCommentsResponse(
            comments=[
                comment_to_proto(
                    comment,
                    reactions.get(comment.id),
                    reply_count=replies.get(comment.id, 0),
                    accepted=post.accepted_answer_id == comment.id,
                )
                for comment in listed
            ],
            next_page_token=token,
        )

    async def _may_speak(self, community_id: str, caller: Identity, what: str) -> bool:
        """A member, not muted, in a community that is not archived; whether they moderate."""
        standing = await self.access.require_voice(community_id, caller, what, writable=True)
        return domain.moderates(standing.role, caller.operator)

    async def _may_link(self, community_id: str, caller: Identity) -> None:
        await self.access.require_privilege(
            community_id, caller, "post_links", "posting links", open_until_gated=True
        )


def _check_body(problems: Violations, body: str) -> None:
    problem = domain.body_problem(body)
    if problem:
        problems.add("body", problem)


async def _load(
    session: AsyncSession, community_id: str, comment_id: str, caller: Identity, moderator: bool
) -> tuple[Comment, Post]:
    """The comment (locked for the change) and its post, when the caller sees the post; a
    comment on a post hidden from the caller is not found, like the post."""
    comment = await CommentRepository(session).get(community_id, comment_id, for_update=True)
    post = None
    if comment is not None:
        post = await PostRepository(session).get(community_id, comment.post_id)
    if (
        comment is None
        or post is None
        or not post.visible_to(caller.user_id, moderator)
        or not comment.visible_to(caller.user_id, moderator)
    ):
        raise domain.comment_not_found(comment_id, community_id)
    return comment, post


async def _full(session: AsyncSession, comment: Comment, post: Post) -> pb.Comment:
    """The comment as a listing shows it: its reactions, replies and whether accepted."""
    reactions = await reaction_counts(session, [comment.id])
    replies = await reply_counts(session, [comment.id]) if comment.top_level else {}
    return comment_to_proto(
        comment,
        reactions.get(comment.id),
        reply_count=replies.get(comment.id, 0),
        accepted=post.accepted_answer_id == comment.id,
    )
