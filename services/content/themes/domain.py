"""Recurring themes: a post from a template every week on a weekday at a local time.
Rules only, no I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.content.calendar.domain import at
from services.kit.errors import FailedPrecondition, NotFound

# The scheduler's kind of job that publishes a theme's occurrence.
PUBLISH_THEME = "publish_theme"
TITLE_MAX = 200
BODY_MAX = 50_000
# The placeholder of a template that stands for the occurrence's local date.
DATE = "{date}"
_LOCAL_TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?")
# Posts of a theme are published as a fixed id per theme and date (a second run of one
# occurrence could not add a second post).
_POSTS = uuid.UUID("6f1c1e8e-3c0b-4f38-9a53-7f6f0c1a2b10")


@dataclass(frozen=True)
class Theme:
    id: str
    community_id: str
    title: str
    body: str
    kind: int
    topic_id: str | None
    weekday: int
    local_time: str
    time_zone: str
    author_user_id: str
    created_at: datetime
    active: bool = True
    next_at: datetime | None = None
    next_local_date: str = ""
    published_count: int = 0
    last_missed_reason: str = ""
    version: int = 1

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def job_key(self) -> str:
        """The scheduler's key of the next occurrence: one job per theme and date."""
        return f"{self.id}/{self.next_local_date}"


def time_of_day(text: str) -> time | None:
    if not _LOCAL_TIME.fullmatch(text):
        return None
    try:
        return time.fromisoformat(text)
    except ValueError:
        return None


def next_occurrence(
    weekday: int, local_time: str, where: ZoneInfo, after: datetime
) -> tuple[datetime, date]:
    """The first instant after `after` that is the weekday at the local time in `where`."""
    clock = time_of_day(local_time)
    assert clock is not None
    day = after.astimezone(where).date()
    day += timedelta(days=(weekday - day.isoweekday()) % 7)
    while True:
        moment = at(datetime.combine(day, clock), where)
        if moment is not None and moment > after:
            return moment, day
        day += timedelta(days=7)


def new_theme(
    *,
    community_id: str,
    title: str,
    body: str,
    kind: int,
    topic_id: str | None,
    weekday: int,
    local_time: str,
    where: ZoneInfo,
    author_user_id: str,
    now: datetime,
) -> Theme:
    first, day = next_occurrence(weekday, local_time, where, now)
    return Theme(
        id=str(uuid.uuid4()),
        community_id=community_id,
        title=title.strip(),
        body=body.rstrip(),
        kind=kind,
        topic_id=topic_id or None,
        weekday=weekday,
        local_time=local_time,
        time_zone=where.key,
        author_user_id=author_user_id,
        created_at=now,
        next_at=first,
        next_local_date=day.isoformat(),
    )


def filled(template: str, local_date: str) -> str:
    return template.replace(DATE, local_date)


def post_id(theme: Theme, local_date: str) -> str:
    return str(uuid.uuid5(_POSTS, f"{theme.id}/{local_date}"))


def advance(theme: Theme, published: bool, missed_reason: str, now: datetime) -> Theme:
    """The theme after its current occurrence ran: the next one still ahead (a week on,
    or later when the service was down for weeks: no backlog of late posts)."""
    assert theme.next_at is not None
    following, day = next_occurrence(
        theme.weekday, theme.local_time, ZoneInfo(theme.time_zone), max(theme.next_at, now)
    )
    return replace(
        theme,
        next_at=following,
        next_local_date=day.isoformat(),
        published_count=theme.published_count + int(published),
        last_missed_reason=missed_reason,
        version=theme.version + 1,
    )


def end(theme: Theme) -> Theme:
    if not theme.active:
        raise FailedPrecondition(f"theme {theme.id} has ended already")
    return replace(theme, active=False, next_at=None, next_local_date="", version=theme.version + 1)


def theme_not_found(theme_id: str, community_id: str) -> NotFound:
    return NotFound(f"theme {theme_id} not found in community {community_id}")
