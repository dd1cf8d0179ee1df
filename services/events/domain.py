"""Activities of a community: rules only, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum


class ActivityKind(IntEnum):
    ONLINE_LECTURE = 1
    OFFLINE_MEETUP = 2
    EXPERT_AMA = 3
    CHALLENGE = 4


# People cannot turn up to a meetup without knowing where it is.
KINDS_WITH_LOCATION = frozenset({ActivityKind.OFFLINE_MEETUP})

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
LOCATION_MAX = 300
UNLIMITED = 0


@dataclass
class Activity:
    id: str
    community_id: str
    host_user_id: str
    kind: ActivityKind
    title: str
    start_time: datetime
    end_time: datetime | None = None
    description: str = ""
    capacity: int = UNLIMITED
    location: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1


def new_activity(
    *,
    community_id: str,
    host_user_id: str,
    kind: ActivityKind,
    title: str,
    start_time: datetime,
    end_time: datetime | None = None,
    description: str = "",
    capacity: int = UNLIMITED,
    location: str = "",
) -> Activity:
    """A new activity: whoever schedules it hosts it."""
    return Activity(
        id=str(uuid.uuid4()),
        community_id=community_id,
        host_user_id=host_user_id,
        kind=kind,
        title=title.strip(),
        start_time=start_time,
        end_time=end_time,
        description=description.strip(),
        capacity=capacity,
        location=location.strip(),
    )


def ends_after_start(start_time: datetime, end_time: datetime | None) -> bool:
    return end_time is None or end_time > start_time
