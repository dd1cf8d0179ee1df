"""Figures about communities: rules only, no I/O. The definitions are docs/metrics.md."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import median

from services.kit.errors import FieldViolation, InvalidArgument

# The longest range a query may cover: two years, a leap day included.
MAX_RANGE_DAYS = 731
METRICS = (
    "member_growth",
    "active_members",
    "retention",
    "participation",
    "content",
    "top_contributors",
    "questions",
    "checkins",
    "funnel",
    "busy_hours",
)
DEFAULT_TOP = 10
# Streak buckets of the check-in figures: (least, most) days, 0 for no upper bound.
STREAK_BUCKETS = ((1, 1), (2, 6), (7, 13), (14, 29), (30, 0))
# A registration that held a seat at the end: the denominator of participation.
SEATED = ("registered", "attended", "no_show")


@dataclass
class CommunityStats:
    """A community's figures, as projected from the events applied so far.

    A community no event has reached yet is not an error: its figures are all zero, and
    `updated_at` stays unset so a reader can tell "nothing yet" from "counted zero".
    """

    community_id: str
    member_count: int = 0
    post_count: int = 0
    activity_count: int = 0
    product_count: int = 0
    updated_at: datetime | None = None
    archived_at: datetime | None = None


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


# The days a single-day request may name: room on both sides for the weeks it looks at.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9000, 12, 31)


def one_day(text: str, field: str, default: date) -> date:
    """A request's UTC day, YYYY-MM-DD, between FIRST_DAY and LAST_DAY; empty: `default`."""
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument.field(field, "must be a calendar date YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidArgument.field(field, f"must be between {FIRST_DAY} and {LAST_DAY}")
    return day


def date_range(start: str, end: str) -> DateRange:
    """The range a request names: both days valid, in order, at most two years apart."""
    problems: list[FieldViolation] = []
    days: dict[str, date] = {}
    for name, text in (("start_date", start), ("end_date", end)):
        try:
            days[name] = date.fromisoformat(text)
        except ValueError:
            problems.append(FieldViolation(name, "must be a calendar date YYYY-MM-DD"))
    if problems:
        raise InvalidArgument(problems)
    first, last = days["start_date"], days["end_date"]
    if last < first:
        raise InvalidArgument.field("end_date", f"must not be before start_date {first}")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidArgument.field(
            "end_date", f"the range may cover at most {MAX_RANGE_DAYS} days (two years)"
        )
    return DateRange(first, last)


def chosen_metrics(names: Sequence[str]) -> tuple[str, ...]:
    """The metrics a request asks for (all when it names none); an unknown name is refused."""
    for index, name in enumerate(names):
        if name not in METRICS:
            raise InvalidArgument.field(
                f"metrics[{index}]", f"unknown metric {name!r}; known: {', '.join(METRICS)}"
            )
    return tuple(names) or METRICS


def ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


# -- growth ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrowthDay:
    day: date
    joined: int
    left: int
    members: int


def growth(
    days: DateRange, before: int, joined: Mapping[date, int], left: Mapping[date, int]
) -> list[GrowthDay]:
    """Each day's joins and departures, and the members at its end (`before`: at the end of
    the day before the range)."""
    members = before
    series: list[GrowthDay] = []
    for day in days.days:
        members += joined.get(day, 0) - left.get(day, 0)
        series.append(GrowthDay(day, joined.get(day, 0), left.get(day, 0), members))
    return series


# -- active members --------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveDay:
    day: date
    dau: int
    wau: int
    mau: int


def active_members(days: DateRange, active: Iterable[tuple[date, str]]) -> list[ActiveDay]:
    """DAU, WAU (7 days ending that day) and MAU (30 days) from (day, member) pairs that
    cover at least the 29 days before the range."""
    by_day: dict[date, set[str]] = {}
    for day, member in active:
        by_day.setdefault(day, set()).add(member)
    series: list[ActiveDay] = []
    for day in days.days:
        week: set[str] = set()
        month: set[str] = set()
        for back in range(30):
            members = by_day.get(day - timedelta(days=back), set())
            month |= members
            if back < 7:
                week |= members
        series.append(ActiveDay(day, len(by_day.get(day, ())), len(week), len(month)))
    return series


# -- retention -------------------------------------------------------------------------------


@dataclass
class Cohort:
    week_start: date
    members: set[str] = field(default_factory=set)
    active: list[int] = field(default_factory=list)


def week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def retention(
    days: DateRange, joined: Iterable[tuple[str, date]], active: Iterable[tuple[str, date]]
) -> list[Cohort]:
    """Weekly cohorts of members who first joined in the range, and how many of each were
    active in each week after (week 0 is the week they joined), up to the range's end."""
    cohorts: dict[date, Cohort] = {}
    cohort_of: dict[str, date] = {}
    for member, day in joined:
        week = week_of(day)
        cohorts.setdefault(week, Cohort(week)).members.add(member)
        cohort_of[member] = week
    weeks_active: dict[tuple[date, int], set[str]] = {}
    for member, day in active:
        cohort_week = cohort_of.get(member)
        if cohort_week is None or day < cohort_week or day > days.end:
            continue
        weeks_active.setdefault((cohort_week, (day - cohort_week).days // 7), set()).add(member)
    for week, cohort in cohorts.items():
        weeks = (week_of(days.end) - week).days // 7 + 1
        cohort.active = [len(weeks_active.get((week, n), ())) for n in range(weeks)]
    return [cohorts[week] for week in sorted(cohorts)]


# -- questions, check-ins --------------------------------------------------------------------


def answer_times(asked_and_answered: Iterable[tuple[datetime, datetime | None]]) -> list[float]:
    """Seconds from each answered question to its first answer."""
    return [
        max(0.0, (answered - asked).total_seconds())
        for asked, answered in asked_and_answered
        if answered is not None
    ]


def median_of(values: Sequence[float]) -> float:
    return float(median(values)) if values else 0.0


def streak_buckets(longest: Iterable[int]) -> list[tuple[int, int, int]]:
    """(least, most, members) per bucket of each member's longest streak in the range."""
    counted: Counter[int] = Counter()
    for days in longest:
        for index, (least, most) in enumerate(STREAK_BUCKETS):
            if days >= least and (most == 0 or days <= most):
                counted[index] += 1
                break
    return [(least, most, counted[index]) for index, (least, most) in enumerate(STREAK_BUCKETS)]
