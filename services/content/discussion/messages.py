"""Comments as the API returns them."""

from __future__ import annotations

from collections.abc import Mapping

from services.content.discussion.domain import Comment
from services.content.posts.messages import reaction_counts_to_proto
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.content.v1 import content_service_pb2 as pb

_STATUS = {
    "visible": pb.MODERATION_STATUS_VISIBLE,
    "held": pb.MODERATION_STATUS_HELD,
    "hidden": pb.MODERATION_STATUS_HIDDEN,
    "removed": pb.MODERATION_STATUS_REMOVED,
}


def comment_to_proto(
    comment: Comment,
    reactions: Mapping[int, int] | None = None,
    *,
    reply_count: int = 0,
    accepted: bool = False,
) -> pb.Comment:
    return pb.Comment(
        id=comment.id,
        community_id=comment.community_id,
        post_id=comment.post_id,
        parent_comment_id=comment.parent_id or "",
        author_user_id=comment.author_user_id,
        body=comment.body,
        create_time=timestamp(comment.created_at),
        update_time=timestamp_or_none(comment.updated_at),
        delete_time=timestamp_or_none(comment.deleted_at),
        is_answer=comment.is_answer,
        accepted=accepted,
        reply_count=reply_count,
        reactions=reaction_counts_to_proto(reactions or {}),
        version=comment.version,
        etag=comment.etag,
        moderation_status=_STATUS[comment.moderation],
    )
