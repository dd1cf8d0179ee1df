"""Posts of a community: rules only, no I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from urllib.parse import urlsplit


class PostKind(IntEnum):
    ARTICLE = 1
    VIDEO = 2
    AUDIO = 3
    LINK = 4
    RESOURCE = 5
    QUESTION = 6


# A post is either something written here or a pointer to something elsewhere.
KINDS_WITH_BODY = frozenset({PostKind.ARTICLE, PostKind.QUESTION})
KINDS_WITH_URL = frozenset({PostKind.LINK, PostKind.VIDEO, PostKind.AUDIO, PostKind.RESOURCE})

TITLE_MAX = 200
BODY_MAX = 50_000
URL_MAX = 2_000


@dataclass
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


def new_post(
    *,
    community_id: str,
    author_user_id: str,
    kind: PostKind,
    title: str,
    body: str = "",
    url: str = "",
    tags: list[str] | None = None,
) -> Post:
    """A new post: whoever publishes it is its author."""
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
    )


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


def carries_links(url: str, body: str) -> bool:
    """A post with a URL, or with a web address in its body: what `post_links` gates."""
    return bool(url) or _LINK.search(body) is not None
