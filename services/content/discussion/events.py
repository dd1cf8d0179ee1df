"""The facts of discussion (comments, reactions, accepted answers), staged in content's
outbox in the caller's transaction. Each is about a post: its subject names the post."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion.domain import Comment
from services.content.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events
from studyhall.content.v1 import content_service_pb2 as pb


class DiscussionEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def comment_added(self, comment: Comment) -> None:
        await self._add(
            comment.community_id,
            comment.post_id,
            events.CommentAdded(
                community_id=comment.community_id,
                comment_id=comment.id,
                post_id=comment.post_id,
                author_user_id=comment.author_user_id,
                is_answer=comment.is_answer,
                create_time=timestamp(comment.created_at),
                version=comment.version,
            ),
        )

    async def comment_edited(self, comment: Comment) -> None:
        assert comment.updated_at is not None
        await self._add(
            comment.community_id,
            comment.post_id,
            events.CommentEdited(
                community_id=comment.community_id,
                comment_id=comment.id,
                post_id=comment.post_id,
                author_user_id=comment.author_user_id,
                version=comment.version,
                update_time=timestamp(comment.updated_at),
            ),
        )

    async def comment_deleted(self, comment: Comment) -> None:
        assert comment.deleted_at is not None
        await self._add(
            comment.community_id,
            comment.post_id,
            events.CommentDeleted(
                community_id=comment.community_id,
                comment_id=comment.id,
                post_id=comment.post_id,
                author_user_id=comment.author_user_id,
                deleted_by_user_id=comment.deleted_by or "",
                version=comment.version,
                delete_time=timestamp(comment.deleted_at),
            ),
        )

    async def reaction_added(
        self,
        community_id: str,
        post_id: str,
        comment_id: str,
        user_id: str,
        kind: int,
        now: datetime,
    ) -> None:
        await self._add(
            community_id,
            post_id,
            events.ReactionAdded(
                community_id=community_id,
                post_id=post_id,
                comment_id=comment_id,
                user_id=user_id,
                kind=pb.ReactionKind.ValueType(kind),
                react_time=timestamp(now),
            ),
        )

    async def reaction_removed(
        self,
        community_id: str,
        post_id: str,
        comment_id: str,
        user_id: str,
        kind: int,
        now: datetime,
    ) -> None:
        await self._add(
            community_id,
            post_id,
            events.ReactionRemoved(
                community_id=community_id,
                post_id=post_id,
                comment_id=comment_id,
                user_id=user_id,
                kind=pb.ReactionKind.ValueType(kind),
                remove_time=timestamp(now),
            ),
        )

    async def _add(self, community_id: str, post_id: str, event: Message) -> None:
        await OUTBOX.add(
            self.session,
            event,
            community_id=community_id,
            subject=f"communities/{community_id}/posts/{post_id}",
        )
