"""Posts of a community: their kinds, states and edits. Rules only, no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any
from urllib.parse import urlsplit

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound


class PostKind(IntEnum):
    ARTICLE = 1
    VIDEO = 2
    AUDIO = 3
    LINK = 4
    RESOURCE = 5
    QUESTION = 6


class PostState(IntEnum):
    DRAFT = 1
    PUBLISHED = 2
    DELETED = 3
    # Moderation (services/content/moderation): held by a keyword rule, hidden or removed by
    # a moderator. Visible to the author and moderators, as a deleted post is.
    HELD = 4
    HIDDEN = 5
    REMOVED = 6


# Moderators decide these; the author neither deletes nor restores them.
MODERATED = frozenset({PostState.HELD, PostState.HIDDEN, PostState.REMOVED})


# A post is either something written here or a pointer to something elsewhere.
KINDS_WITH_BODY = frozenset({PostKind.ARTICLE, PostKind.QUESTION})
KINDS_WITH_URL = frozenset({PostKind.LINK, PostKind.VIDEO, PostKind.AUDIO, PostKind.RESOURCE})

TITLE_MAX = 200
SUMMARY_MAX = 500
BODY_MAX = 50_000
URL_MAX = 2_000
MEDIA_MAX = 10
MEDIA_TYPE_MAX = 100
# Longer than any lecture recording; a larger duration is a unit mistake.
DURATION_MAX = timedelta(days=7)
MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")

# What UpdatePost may change, by field-mask path.
UPDATABLE = ("title", "summary", "body", "url", "tags", "topic_id", "media")


@dataclass(frozen=True)
class Media:
    url: str
    media_type: str
    # How long it plays; None when it does not play (an image, a document).
    duration: timedelta | None = None

    def to_json(self) -> dict[str, Any]:
        seconds = None if self.duration is None else self.duration // timedelta(microseconds=1)
        return {"url": self.url, "media_type": self.media_type, "duration_us": seconds}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Media:
        micros = value.get("duration_us")
        duration = None if micros is None else timedelta(microseconds=int(micros))
        return cls(str(value["url"]), str(value["media_type"]), duration)


@dataclass(frozen=True)
class Post:
    id: str
    community_id: str
    author_user_id: str
    kind: PostKind
    title: str
    body: str = ""
    url: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1
    summary: str = ""
    topic_id: str | None = None
    media: list[Media] = field(default_factory=list)
    state: PostState = PostState.PUBLISHED
    published_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    pinned_at: datetime | None = None
    accepted_answer_id: str | None = None
    answer_count: int = 0
    first_answer_at: datetime | None = None
    # A draft on the calendar: when it goes live; when it could not, and why.
    scheduled_at: datetime | None = None
    missed_at: datetime | None = None
    missed_reason: str = ""

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def visible(self) -> bool:
        """Whether the community sees it."""
        return self.state is PostState.PUBLISHED

    def visible_to(self, user_id: str, moderator: bool) -> bool:
        """A draft is its author's alone; a deleted post its author's and moderators'."""
        if self.state is PostState.PUBLISHED:
            return True
        mine = bool(user_id) and user_id == self.author_user_id
        if self.state is PostState.DRAFT:
            return mine
        return mine or moderator


@dataclass(frozen=True)
class Revision:
    post_id: str
    number: int
    community_id: str
    editor_user_id: str
    edited_at: datetime
    changed_fields: list[str]
    # The changed fields' values before the edit, as stored (media as JSON).
    previous: dict[str, Any]


def new_post(
    *,
    community_id: str,
    author_user_id: str,
    kind: PostKind,
    title: str,
    body: str = "",
    url: str = "",
    tags: list[str] | None = None,
    summary: str = "",
    topic_id: str | None = None,
    media: list[Media] | None = None,
    draft: bool = False,
    held: bool = False,
    now: datetime | None = None,
) -> Post:
    """A new post, visible at once, a draft, or held for review (a keyword rule that holds
    matched it): whoever creates it is its author."""
    now = now or datetime.now(UTC)
    state = PostState.DRAFT if draft else PostState.HELD if held else PostState.PUBLISHED
    return Post(
        id=str(uuid.uuid4()),
        community_id=community_id,
        author_user_id=author_user_id,
        kind=kind,
        title=title.strip(),
        # Leading indentation of a body can be markup (a code block), so it is kept as written.
        body=body.rstrip(),
        url=url,
        tags=sorted(set(tags or [])),
        created_at=now,
        summary=summary.strip(),
        topic_id=topic_id or None,
        media=list(media or []),
        state=state,
        # When it first became visible: a held post gets it when approved.
        published_at=now if state is PostState.PUBLISHED else None,
    )


def post_not_found(post_id: str, community_id: str) -> NotFound:
    """The one answer for a post that is not there for the caller: missing, in another
    community, or someone else's draft."""
    return NotFound(f"post {post_id} not found in community {community_id}")


def check_etag(post: Post, etag: str) -> None:
    if etag and etag != post.etag:
        raise FailedPrecondition(
            f"post {post.id} changed since you read it (etag {etag}, now {post.etag}); "
            "read it again and reapply your change"
        )


def shape_problems(kind: PostKind, body: str, url: str, prefix: str = "") -> dict[str, str]:
    """What a kind of post needs: a body to read, or a URL to open (field -> problem)."""
    problems: dict[str, str] = {}
    if kind in KINDS_WITH_BODY and not body.strip():
        problems[f"{prefix}body"] = "is required"
    if kind in KINDS_WITH_URL and not url:
        problems[f"{prefix}url"] = "is required for link, video, audio and resource posts"
    return problems


def check_shape(kind: PostKind, body: str, url: str, prefix: str = "") -> None:
    for field_name, problem in shape_problems(kind, body, url, prefix).items():
        raise InvalidArgument.field(field_name, problem)


def edit(
    post: Post, changes: Mapping[str, Any], editor: str, etag: str, now: datetime, number: int
) -> tuple[Post, Revision | None]:
    """The post with `changes` applied (paths from UPDATABLE), and the revision recording
    what the changed fields held; no revision and no new version when nothing changed."""
    if post.state is PostState.DELETED:
        raise FailedPrecondition(f"post {post.id} is deleted; a moderator may restore it")
    if post.state is PostState.REMOVED:
        raise FailedPrecondition(
            f"post {post.id} was removed by a moderator; appeal the removal (AppealModeration)"
        )
    check_etag(post, etag)
    values = dict(changes)
    if "title" in values:
        values["title"] = values["title"].strip()
    if "summary" in values:
        values["summary"] = values["summary"].strip()
    if "body" in values:
        values["body"] = values["body"].rstrip()
    if "tags" in values:
        values["tags"] = sorted(set(values["tags"]))
    if "topic_id" in values:
        values["topic_id"] = values["topic_id"] or None
    changed = sorted(name for name, value in values.items() if getattr(post, name) != value)
    if not changed:
        return post, None
    edited = replace(
        post,
        **{name: values[name] for name in changed},
        version=post.version + 1,
        updated_at=now,
    )
    check_shape(edited.kind, edited.body, edited.url, prefix="post.")
    previous = {name: _stored(getattr(post, name)) for name in changed}
    revision = Revision(post.id, number, post.community_id, editor, now, changed, previous)
    return edited, revision


def publish(post: Post, now: datetime, held: bool = False) -> Post:
    """A draft goes live, or into review when a keyword rule that holds matches it."""
    if post.state is not PostState.DRAFT:
        raise FailedPrecondition(f"post {post.id} is not a draft; it is {post.state.name.lower()}")
    if held:
        return replace(post, state=PostState.HELD, version=post.version + 1)
    return replace(post, state=PostState.PUBLISHED, published_at=now, version=post.version + 1)


def hold(post: Post) -> Post:
    """A visible post edited to hold a phrase of a rule that holds: back into review."""
    return replace(post, state=PostState.HELD, pinned_at=None)


def delete(post: Post, by: str, now: datetime) -> Post:
    if post.state is PostState.DELETED:
        raise FailedPrecondition(f"post {post.id} is already deleted")
    if post.state in MODERATED:
        raise FailedPrecondition(
            f"post {post.id} is {post.state.name.lower()} by moderation; a moderator decides "
            "it (its author may appeal with AppealModeration)"
        )
    return replace(
        post,
        state=PostState.DELETED,
        deleted_at=now,
        deleted_by=by,
        pinned_at=None,
        version=post.version + 1,
    )


def restore(post: Post) -> Post:
    """A deleted post back as it was: published if it had been, a draft otherwise."""
    if post.state is not PostState.DELETED:
        raise FailedPrecondition(f"post {post.id} is not deleted")
    state = PostState.PUBLISHED if post.published_at is not None else PostState.DRAFT
    return replace(post, state=state, deleted_at=None, deleted_by=None, version=post.version + 1)


def pin(post: Post, now: datetime) -> Post:
    if post.state is not PostState.PUBLISHED:
        raise FailedPrecondition(f"only a published post can be pinned; post {post.id} is not")
    if post.pinned_at is not None:
        raise FailedPrecondition(f"post {post.id} is already pinned")
    return replace(post, pinned_at=now, version=post.version + 1)


def unpin(post: Post) -> Post:
    if post.pinned_at is None:
        raise FailedPrecondition(f"post {post.id} is not pinned")
    return replace(post, pinned_at=None, version=post.version + 1)


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host: something a reader's browser can open."""
    if any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port only shows when read
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


_LINK = re.compile(r"https?://", re.IGNORECASE)


def carries_links(url: str, *texts: str) -> bool:
    """A URL, or a web address in a text: what `post_links` gates."""
    # "://" first: a plain search, where the case-blind pattern costs more on a long body.
    return bool(url) or any("://" in text and _LINK.search(text) is not None for text in texts)


def _stored(value: Any) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], Media):
        return [item.to_json() for item in value]
    return value
