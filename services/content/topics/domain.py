"""Topics (channels) of a community. Rules only, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.kit.errors import FailedPrecondition

NAME_MAX = 80
DESCRIPTION_MAX = 500
# What UpdateTopic may change, by field-mask path.
UPDATABLE = ("name", "description")


@dataclass(frozen=True)
class Topic:
    id: str
    community_id: str
    name: str
    description: str
    created_by: str
    created_at: datetime
    version: int = 1

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def name_key(self) -> str:
        return name_key(self.name)


def name_key(name: str) -> str:
    """Two topic names that differ by case or surrounding spaces alone are the same name."""
    return name.strip().casefold()


def new_topic(
    community_id: str, name: str, description: str, created_by: str, now: datetime
) -> Topic:
    return Topic(
        str(uuid.uuid4()), community_id, name.strip(), description.strip(), created_by, now
    )


def update(topic: Topic, changes: Mapping[str, Any], etag: str) -> Topic:
    if etag and etag != topic.etag:
        raise FailedPrecondition(
            f"topic {topic.id} changed since you read it (etag {etag}, now {topic.etag}); "
            "read it again and reapply your change"
        )
    name = str(changes.get("name", topic.name)).strip()
    description = str(changes.get("description", topic.description)).strip()
    return replace(topic, name=name, description=description, version=topic.version + 1)
