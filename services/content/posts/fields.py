"""The checks of a post's fields, for CreatePost and UpdatePost alike."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from services.content.posts import domain
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb

_NANOS = 1_000_000_000


def check_post_fields(
    problems: Violations,
    post: pb.Post | pb.CreatePostRequest,
    paths: Collection[str],
    prefix: str = "",
) -> None:
    """Problems with the fields of `post` that `paths` names, under `prefix` (e.g. "post.")."""
    if "title" in paths:
        problems.text(f"{prefix}title", post.title, max_length=domain.TITLE_MAX)
    if "summary" in paths:
        problems.text(
            f"{prefix}summary", post.summary, required=False, max_length=domain.SUMMARY_MAX
        )
    if "body" in paths:
        problems.text(f"{prefix}body", post.body, required=False, max_length=domain.BODY_MAX)
    if "url" in paths and post.url:
        check_url(problems, f"{prefix}url", post.url)
    if "tags" in paths:
        problems.tags(f"{prefix}tags", list(post.tags))
    if "topic_id" in paths:
        problems.uuid(f"{prefix}topic_id", post.topic_id, required=False)
    if "media" in paths:
        check_media(problems, f"{prefix}media", post.media)


def check_url(problems: Violations, field: str, url: str) -> None:
    if len(url) > domain.URL_MAX:
        problems.add(field, f"must be at most {domain.URL_MAX} characters (got {len(url)})")
    elif not domain.is_web_url(url):
        problems.add(field, "must be an absolute http:// or https:// URL")


def check_media(problems: Violations, field: str, media: Sequence[pb.Media]) -> None:
    if len(media) > domain.MEDIA_MAX:
        problems.add(field, f"must have at most {domain.MEDIA_MAX} entries (got {len(media)})")
        return
    for index, item in enumerate(media):
        at = f"{field}[{index}]"
        if not item.url:
            problems.add(f"{at}.url", "is required")
        else:
            check_url(problems, f"{at}.url", item.url)
        if not domain.MEDIA_TYPE.fullmatch(item.media_type):
            problems.add(
                f"{at}.media_type", "must be a lowercase media type such as video/mp4 or audio/mpeg"
            )
        if item.HasField("duration"):
            seconds, nanos = item.duration.seconds, item.duration.nanos
            if not 0 <= nanos < _NANOS or seconds < 0:
                problems.add(f"{at}.duration", "must not be negative")
            elif seconds > domain.DURATION_MAX.total_seconds():
                problems.add(f"{at}.duration", f"must be at most {domain.DURATION_MAX.days} days")
