"""Member care: which members get which signal on which of their days. Rules only, no I/O;
every rule takes the moment it judges, so tests walk across days, hours and time zones."""

from __future__ import annotations

import calendar
import uuid
import zoneinfo
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from services.kit.errors import FailedPrecondition
from services.kit.zones import zone

MEMBER_INACTIVE = "member_inactive"
STREAK_AT_RISK = "streak_at_risk"
GREETING = "greeting"
KINDS = (MEMBER_INACTIVE, STREAK_AT_RISK, GREETING)

BIRTHDAY = "birthday"
HOLIDAY = "holiday"

DEFAULT_INACTIVE_AFTER_DAYS = 14
MAX_INACTIVE_AFTER_DAYS = 365
DEFAULT_REMINDER_HOUR = 20
MAX_HOLIDAYS = 50
MAX_HOLIDAY_NAME = 80

# Fixed forever: event ids of signals already sent are derived from it.
SIGNAL_NAMESPACE = uuid.UUID("5b0c6f7e-3f4a-5d1e-9c8b-2a7d4e6f1c30")


@dataclass(frozen=True)
class Holiday:
    when: str  # "MM-DD" every year, "YYYY-MM-DD" once
    name: str

    @property
    def once(self) -> bool:
        return len(self.when) == 10

    def falls_on(self, day: date) -> bool:
        return self.when == (day.isoformat() if self.once else day.isoformat()[5:])


@dataclass(frozen=True)
class Settings:
    community_id: str
    inactive_after_days: int = DEFAULT_INACTIVE_AFTER_DAYS
    streak_reminder_hour: int = DEFAULT_REMINDER_HOUR
    birthdays: bool = True
    holidays: tuple[Holiday, ...] = ()
    version: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Signal:
    """One signal to a member for one of their local days."""

    community_id: str
    user_id: str
    kind: str
    local_date: date
    created_at: datetime
    days: int = 0
    occasion: str = ""
    holiday_name: str = ""

    @property
    def event_id(self) -> str:
        return signal_id(self.community_id, self.user_id, self.kind, self.local_date)


def signal_id(community_id: str, user_id: str, kind: str, local_date: date) -> str:
    """The event id of a signal: the same fact always gets the same id, whoever sends it."""
    name = f"{community_id}/{user_id}/{kind}/{local_date.isoformat()}"
    return str(uuid.uuid5(SIGNAL_NAMESPACE, name))


# --- Settings ---


def settings_problems(
    inactive_after_days: int, streak_reminder_hour: int, holidays: list[Holiday]
) -> list[tuple[str, str]]:
    """(field under `settings`, what is wrong) for each problem with proposed settings."""
    problems: list[tuple[str, str]] = []
    if not 0 <= inactive_after_days <= MAX_INACTIVE_AFTER_DAYS:
        problems.append(
            (
                "inactive_after_days",
                f"must be 1 to {MAX_INACTIVE_AFTER_DAYS} days, or 0 to turn it off "
                f"(got {inactive_after_days})",
            )
        )
    if not 0 <= streak_reminder_hour <= 23:
        problems.append(
            ("streak_reminder_hour", f"must be a local hour 0 to 23 (got {streak_reminder_hour})")
        )
    if len(holidays) > MAX_HOLIDAYS:
        problems.append(("holidays", f"must have at most {MAX_HOLIDAYS} entries"))
    for index, holiday in enumerate(holidays):
        if not valid_holiday_date(holiday.when):
            problems.append(
                (
                    f"holidays[{index}].date",
                    f"must be MM-DD (every year) or YYYY-MM-DD (once), got {holiday.when!r:.20}",
                )
            )
        if not holiday.name.strip() or len(holiday.name) > MAX_HOLIDAY_NAME:
            problems.append(
                (f"holidays[{index}].name", f"must be 1 to {MAX_HOLIDAY_NAME} characters")
            )
    return problems


def valid_holiday_date(value: str) -> bool:
    # Without a year, 29 February is a real day; check it against a leap year.
    text = value if len(value) == 10 else f"2000-{value}"
    if len(text) != 10:
        return False
    try:
        return date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def new_settings(
    current: Settings, proposed: Settings, expected_version: int, now: datetime
) -> Settings:
    if expected_version != current.version:
        raise FailedPrecondition(
            f"care settings of community {current.community_id} changed since you read them "
            f"(version {expected_version}, now {current.version}); read them again and reapply",
        )
    return replace(
        proposed,
        community_id=current.community_id,
        version=current.version + 1,
        updated_at=now,
    )


# --- Days and hours ---


def zone_of(profile_zone: str, community_zone: str) -> zoneinfo.ZoneInfo:
    """The zone a member's days are counted in: theirs, else the community's, else UTC (a
    name this system no longer knows falls back the same way)."""
    for name in (profile_zone, community_zone):
        found = zone(name) if name else None
        if found is not None:
            return found
    return zoneinfo.ZoneInfo("UTC")


def candidate_days(now: datetime) -> list[date]:
    """Every day that is "today" somewhere on Earth at `now` (UTC-12 to UTC+14)."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=1), today, today + timedelta(days=1)]


# --- The rules of each signal ---


def inactive_days(since: datetime, now: datetime, after_days: int) -> int:
    """Whole days inactive when that is at least `after_days` (0: the rule is off), else 0."""
    if after_days <= 0:
        return 0
    days = (now - since) // timedelta(days=1)
    return days if days >= after_days else 0


def streak_at_risk(
    *,
    current: int,
    last_date: date,
    today: date,
    grace_days: int,
    local_hour: int,
    reminder_hour: int,
) -> int:
    """The streak days at risk: the streak still runs, today has no check-in yet and the
    member's local hour has reached the reminder hour; else 0."""
    if current < 1 or last_date >= today or local_hour < reminder_hour:
        return 0
    missed = (today - last_date).days - 1
    return current if missed <= grace_days else 0


def is_birthday(month: int, day: int, today: date) -> bool:
    if (month, day) == (today.month, today.day):
        return True
    # Born on 29 February: greeted on the 28th when the year has no 29th.
    return (
        (month, day) == (2, 29)
        and not calendar.isleap(today.year)
        and (today.month, today.day) == (2, 28)
    )


def birthday_pairs(days: list[date]) -> set[tuple[int, int]]:
    """The (month, day) birthdays that may fall on any of `days`."""
    pairs = {(day.month, day.day) for day in days}
    if any(is_birthday(2, 29, day) for day in days):
        pairs.add((2, 29))
    return pairs


def holiday_on(holidays: tuple[Holiday, ...], day: date) -> Holiday | None:
    """The community's holiday on `day`: a one-off date before a yearly one."""
    dated = [h for h in holidays if h.once and h.falls_on(day)]
    yearly = [h for h in holidays if not h.once and h.falls_on(day)]
    found = dated or yearly
    return found[0] if found else None
