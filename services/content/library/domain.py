"""The resource library: curated books, courses, tools, articles and videos with a level,
tags and a review, rated 1 to 5 by members. Rules only, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum
from typing import Any

from services.kit.errors import FailedPrecondition, NotFound

TITLE_MAX = 200
URL_MAX = 2_000
REVIEW_MAX = 1_000
STARS = range(1, 6)
# What UpdateResource may change, by field-mask path.
UPDATABLE = ("title", "url", "type", "level", "tags", "review")


class ResourceType(IntEnum):
    BOOK = 1
    COURSE = 2
    TOOL = 3
    ARTICLE = 4
    VIDEO = 5


class Level(IntEnum):
    BEGINNER = 1
    INTERMEDIATE = 2
    ADVANCED = 3


@dataclass(frozen=True)
class Resource:
    id: str
    community_id: str
    title: str
    url: str
    type: ResourceType
    level: Level
    tags: tuple[str, ...]
    review: str
    added_by: str
    created_at: datetime
    updated_at: datetime | None = None
    version: int = 1
    rating_sum: int = 0
    rating_count: int = 0

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def rating_average(self) -> float:
        return self.rating_sum / self.rating_count if self.rating_count else 0.0


def new_resource(community_id: str, fields: Mapping[str, Any], by: str, now: datetime) -> Resource:
    return Resource(
        id=str(uuid.uuid4()),
        community_id=community_id,
        title=str(fields["title"]).strip(),
        url=str(fields["url"]).strip(),
        type=ResourceType(int(fields["type"])),
        level=Level(int(fields["level"])),
        tags=_tags(fields["tags"]),
        review=str(fields["review"]).strip(),
        added_by=by,
        created_at=now,
    )


def update(resource: Resource, changes: Mapping[str, Any], etag: str, now: datetime) -> Resource:
    if etag and etag != resource.etag:
        raise FailedPrecondition(
            f"resource {resource.id} changed since you read it (etag {etag}, now "
            f"{resource.etag}); read it again and reapply your change"
        )
    return replace(
        resource,
        title=str(changes.get("title", resource.title)).strip(),
        url=str(changes.get("url", resource.url)).strip(),
        type=ResourceType(int(changes.get("type", resource.type))),
        level=Level(int(changes.get("level", resource.level))),
        tags=_tags(changes["tags"]) if "tags" in changes else resource.tags,
        review=str(changes.get("review", resource.review)).strip(),
        updated_at=now,
        version=resource.version + 1,
    )


def _tags(values: Any) -> tuple[str, ...]:
    """Tags in the order given, each once, folded to lower case (browsing matches them so)."""
    return tuple(dict.fromkeys(str(tag).casefold() for tag in values))


def resource_not_found(resource_id: str, community_id: str) -> NotFound:
    return NotFound(f"resource {resource_id} not found in community {community_id}")
