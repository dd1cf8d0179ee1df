"""Posts and revisions as the API returns them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts.domain import Media, Post, Revision
from services.content.store import engagement
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.content.v1 import content_service_pb2 as pb


def reaction_counts_to_proto(counts: Mapping[int, int]) -> list[pb.ReactionCount]:
    return [
        pb.ReactionCount(kind=pb.ReactionKind.ValueType(kind), count=count)
        for kind, count in sorted(counts.items())
        if count
    ]


def media_to_proto(item: Media) -> pb.Media:
    message = pb.Media(url=item.url, media_type=item.media_type)
    if item.duration is not None:
        duration = Duration()
        duration.FromTimedelta(item.duration)
        message.duration.CopyFrom(duration)
    return message


def media_from_proto(message: pb.Media) -> Media:
    duration = message.duration.ToTimedelta() if message.HasField("duration") else None
    return Media(message.url, message.media_type, duration)


def post_to_proto(
    post: Post, reactions: Mapping[int, int] | None = None, comment_count: int = 0
) -> pb.Post:
    return pb.Post(
        id=post.id,
        community_id=post.community_id,
        author_user_id=post.author_user_id,
        kind=pb.PostKind.ValueType(post.kind),
        title=post.title,
        body=post.body,
        url=post.url,
        tags=post.tags,
        create_time=timestamp(post.created_at),
        version=post.version,
        summary=post.summary,
        topic_id=post.topic_id or "",
        media=[media_to_proto(item) for item in post.media],
        state=pb.PostState.ValueType(post.state),
        publish_time=timestamp_or_none(post.published_at),
        update_time=timestamp_or_none(post.updated_at),
        delete_time=timestamp_or_none(post.deleted_at),
        pinned=post.pinned_at is not None,
        pin_time=timestamp_or_none(post.pinned_at),
        reactions=reaction_counts_to_proto(reactions or {}),
        comment_count=comment_count,
        accepted_answer_id=post.accepted_answer_id or "",
        first_answer_time=timestamp_or_none(post.first_answer_at),
        etag=post.etag,
        scheduled_time=timestamp_or_none(post.scheduled_at),
        missed_reason=post.missed_reason,
    )


async def present(session: AsyncSession, posts: Sequence[Post]) -> list[pb.Post]:
    """Posts as the API returns them, with their reactions and comment counts."""
    ids = [post.id for post in posts]
    reactions = await engagement.reaction_counts(session, ids)
    comments = await engagement.comment_counts(session, ids)
    return [post_to_proto(post, reactions.get(post.id), comments.get(post.id, 0)) for post in posts]


def revision_to_proto(revision: Revision) -> pb.PostRevision:
    previous = pb.Post(id=revision.post_id, community_id=revision.community_id)
    for name, value in revision.previous.items():
        _set_previous(previous, name, value)
    return pb.PostRevision(
        post_id=revision.post_id,
        number=revision.number,
        editor_user_id=revision.editor_user_id,
        edit_time=timestamp(revision.edited_at),
        changed_fields=revision.changed_fields,
        previous=previous,
    )


def _set_previous(message: pb.Post, name: str, value: Any) -> None:
    if name == "media":
        message.media.extend(media_to_proto(Media.from_json(item)) for item in value or [])
    elif name == "tags":
        message.tags.extend(value or [])
    elif name == "topic_id":
        message.topic_id = value or ""
    else:
        setattr(message, name, value or "")
