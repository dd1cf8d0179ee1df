"""gRPC handlers for reactions to posts and comments: once per member, target and kind."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion import domain
from services.content.discussion.events import DiscussionEvents
from services.content.discussion.store import CommentRepository, ReactionRepository
from services.content.posts.messages import reaction_counts_to_proto
from services.content.posts.store import PostRepository
from services.content.store.engagement import reaction_counts
from services.kit.access import Access
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition
from services.kit.grouped_writes import Writer
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb

Reaction = pb.ReactRequest | pb.UnreactRequest


class ReactionsApi:
    """Reacting to a post or a comment, and taking the reaction back."""

    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def React(
        self, request: pb.ReactRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReactResponse:
        caller = current_identity()
        _check(request)
        moderator = await self._may_react(request.community_id, caller, "reacting")

        async def react(session: AsyncSession) -> pb.ReactResponse:
            now = datetime.now(UTC)
            post_id, comment_id = await _target(session, request, caller, moderator, adding=True)
            added = await ReactionRepository(session).add(
                community_id=request.community_id,
                post_id=post_id,
                comment_id=comment_id,
                user_id=caller.user_id,
                kind=request.kind,
                now=now,
            )
            if added:
                await DiscussionEvents(session).reaction_added(
                    request.community_id, post_id, comment_id, caller.user_id, request.kind, now
                )
            return pb.ReactResponse(reactions=await _counts(session, comment_id or post_id))

        return await self.writer.write(caller.user_id, request, pb.ReactResponse, react)

    async def Unreact(
        self, request: pb.UnreactRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnreactResponse:
        caller = current_identity()
        _check(request)
        moderator = await self._may_react(request.community_id, caller, "taking a reaction back")

        async def unreact(session: AsyncSession) -> pb.UnreactResponse:
            now = datetime.now(UTC)
            post_id, comment_id = await _target(session, request, caller, moderator, adding=False)
            removed = await ReactionRepository(session).remove(
                target_id=comment_id or post_id, user_id=caller.user_id, kind=request.kind
            )
            if removed:
                await DiscussionEvents(session).reaction_removed(
                    request.community_id, post_id, comment_id, caller.user_id, request.kind, now
                )
            return pb.UnreactResponse(reactions=await _counts(session, comment_id or post_id))

        return await self.writer.write(caller.user_id, request, pb.UnreactResponse, unreact)

    async def _may_react(self, community_id: str, caller: Identity, what: str) -> bool:
        """A member, not muted, in a community that is not archived; whether they moderate."""
        standing = await self.access.require_voice(community_id, caller, what, writable=True)
        return domain.moderates(standing.role, caller.operator)


def _check(request: Reaction) -> None:
    problems = Violations()
    if request.WhichOneof("target") is None:
        problems.add("post_id", "name the post, or a comment_id for a comment, reacted to")
    problems.enum("kind", request.kind, domain.ReactionKind, "ReactionKind", required=True)
    problems.raise_if_any()


async def _target(
    session: AsyncSession, request: Reaction, caller: Identity, moderator: bool, *, adding: bool
) -> tuple[str, str]:
    """The post and the comment ("" for the post itself) a reaction is about, when the caller
    sees them; a new reaction also needs a published post and a comment not deleted."""
    community_id = request.community_id
    posts = PostRepository(session)
    if request.WhichOneof("target") == "comment_id":
        comment = await CommentRepository(session).get(community_id, request.comment_id)
        post = await posts.get(community_id, comment.post_id) if comment else None
        if (
            comment is None
            or post is None
            or not post.visible_to(caller.user_id, moderator)
            or not comment.visible_to(caller.user_id, moderator)
        ):
            raise domain.comment_not_found(request.comment_id, community_id)
        if adding:
            domain.open_for_discussion(post)
            if comment.deleted:
                raise FailedPrecondition(f"comment {comment.id} is deleted; it takes no reactions")
            if not comment.visible:
                raise FailedPrecondition(
                    f"comment {comment.id} is {comment.moderation} by moderation; it takes no "
                    "reactions"
                )
        return post.id, comment.id
    found = await posts.get(community_id, request.post_id)
    post = domain.seen(found, request.post_id, community_id, caller.user_id, moderator)
    if adding:
        domain.open_for_discussion(post)
    return post.id, ""


async def _counts(session: AsyncSession, target_id: str) -> list[pb.ReactionCount]:
    counts = await reaction_counts(session, [target_id])
    return reaction_counts_to_proto(counts.get(target_id, {}))
