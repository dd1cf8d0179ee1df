"""Daily study check-ins and streaks. Rules only, no I/O; every rule takes the time or the
day it judges, so tests can walk across days and time zones without waiting for them."""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from services.kit.errors import AlreadyExists, InvalidArgument

MAX_NOTE = 500
MAX_GRACE_DAYS = 3


@dataclass(frozen=True)
class Checkin:
    id: str
    community_id: str
    user_id: str
    local_date: date
    time_zone: str
    note: str
    created_at: datetime


@dataclass(frozen=True)
class Streak:
    """A member's streak as of their last check-in. Whether it still runs depends on the
    day it is looked at: see `current_days`."""

    community_id: str
    user_id: str
    current: int
    longest: int
    last_date: date
    # When the local day after `last_date` began (UTC), in the zone of the last check-in:
    # lets the store tell running streaks apart without per-member time-zone arithmetic.
    next_day_start: datetime


@dataclass(frozen=True)
class Settings:
    community_id: str
    grace_days: int = 0
    version: int = 0
    updated_at: datetime | None = None


def day_zone(profile_zone: str, community_zone: str) -> str:
    """The zone a member's days are counted in: theirs, else the community's, else UTC."""
    return profile_zone or community_zone or "UTC"


def local_day(moment: datetime, zone: str) -> date:
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).date()


def start_of(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), zoneinfo.ZoneInfo(zone)).astimezone(UTC)


def check_grace(grace_days: int) -> None:
    if not 0 <= grace_days <= MAX_GRACE_DAYS:
        raise InvalidArgument.field(
            "grace_days", f"must be 0 to {MAX_GRACE_DAYS} days (got {grace_days})"
        )


def check_in(
    community_id: str,
    user_id: str,
    previous: Streak | None,
    *,
    note: str,
    zone: str,
    grace_days: int,
    now: datetime,
) -> tuple[Checkin, Streak]:
    """Today's check-in and the streak after it. A member checks in once per local day."""
    today = local_day(now, zone)
    if previous is not None and previous.last_date >= today:
        # A later last day happens when the member moved to a zone that is behind.
        raise AlreadyExists(
            f"you already checked in for {previous.last_date.isoformat()}"
            + ("" if previous.last_date == today else f" (your day is now {today.isoformat()})")
            + "; come back tomorrow",
        )
    current = 1
    longest = 1
    if previous is not None:
        current = (
            previous.current + 1 if missed_days(previous.last_date, today) <= grace_days else 1
        )
        longest = max(previous.longest, current)
    checkin = Checkin(
        id=str(uuid.uuid4()),
        community_id=community_id,
        user_id=user_id,
        local_date=today,
        time_zone=zone,
        note=note,
        created_at=now,
    )
    streak = Streak(
        community_id=community_id,
        user_id=user_id,
        current=current,
        longest=longest,
        last_date=today,
        next_day_start=start_of(today + timedelta(days=1), zone),
    )
    return checkin, streak


def missed_days(last: date, day: date) -> int:
    """Days without a check-in strictly between `last` and `day`."""
    return max((day - last).days - 1, 0)


def current_days(streak: Streak | None, today: date, grace_days: int) -> int:
    """The running streak on `today`: still alive while no more than the grace of days has
    been missed since the last check-in (today itself is not missed yet)."""
    if streak is None:
        return 0
    return streak.current if missed_days(streak.last_date, today) <= grace_days else 0


def alive_after(now: datetime, grace_days: int) -> datetime:
    """The earliest `next_day_start` of a streak still running at `now`: a streak breaks
    once the day after the last check-in and the grace days after it have all ended."""
    return now - timedelta(days=grace_days + 1)


def new_settings(current: Settings, grace_days: int, now: datetime) -> Settings:
    check_grace(grace_days)
    return replace(current, grace_days=grace_days, version=current.version + 1, updated_at=now)


def erased(checkin: Checkin) -> Checkin:
    return replace(checkin, note="")
