"""The content calendar: local times in a community's time zone, and a draft's schedule.
Rules only, no I/O."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.content.posts.domain import Post, PostState
from services.kit.errors import FailedPrecondition
from services.kit.zones import zone as zone

# How far ahead a post may be planned.
HORIZON = timedelta(days=366)
DEFAULT_DAYS = 7
_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def local_time(text: str) -> datetime | None:
    """A wall-clock time "YYYY-MM-DDTHH:MM[:SS]", or None when it is not one."""
    if not _LOCAL_TIME.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def local_date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def at(local: datetime, where: ZoneInfo) -> datetime | None:
    """The instant of a wall-clock time in a zone (the earlier one when clocks go back);
    None at the edges of the calendar (year 1, year 9999), where no instant is."""
    try:
        return local.replace(tzinfo=where).astimezone(UTC)
    except OverflowError:
        return None


def days_span(first: date, days: int, where: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The instants at which the local days [first, first + days) begin and end; None when
    the span runs off the calendar."""
    try:
        start = datetime.combine(first, time(), where)
        end = datetime.combine(first + timedelta(days=days), time(), where)
        return start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        return None


def schedule(post: Post, when: datetime) -> Post:
    if post.state is not PostState.DRAFT:
        raise FailedPrecondition(
            f"only a draft can be scheduled; post {post.id} is {post.state.name.lower()}"
        )
    return replace(
        post, scheduled_at=when, missed_at=None, missed_reason="", version=post.version + 1
    )


def unschedule(post: Post) -> Post:
    if post.state is not PostState.DRAFT or post.scheduled_at is None:
        raise FailedPrecondition(f"post {post.id} is not scheduled")
    return replace(post, scheduled_at=None, version=post.version + 1)


def miss(post: Post, reason: str, now: datetime) -> Post:
    return replace(post, missed_at=now, missed_reason=reason, version=post.version + 1)
