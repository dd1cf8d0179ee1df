"""Activities of a community: their kinds, plans, changes and series. Rules only, no I/O."""

from __future__ import annotations

import contextlib
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any
from zoneinfo import ZoneInfo

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.zones import zone as zone


class ActivityKind(IntEnum):
    ONLINE_LECTURE = 1
    OFFLINE_MEETUP = 2
    EXPERT_AMA = 3
    CHALLENGE = 4


class Visibility(IntEnum):
    COMMUNITY = 1
    MEMBERS = 2


class ActivityState(IntEnum):
    SCHEDULED = 1
    CANCELLED = 2


class Frequency(IntEnum):
    WEEKLY = 1
    MONTHLY = 2


# People cannot turn up to a meetup without knowing where it is; an AMA needs experts to
# ask. (A lecture's join URL may come later: it is often made the day before.)
KINDS_WITH_LOCATION = frozenset({ActivityKind.OFFLINE_MEETUP})
KINDS_WITH_SPEAKERS = frozenset({ActivityKind.EXPERT_AMA})

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
LOCATION_MAX = 300
URL_MAX = 2_000
REASON_MAX = 1_000
SPEAKERS_MAX = 20
USER_ID_MAX = 200
REMINDERS_MAX = 5
REMINDER_MAX = timedelta(days=30)
QUESTIONS_MAX = 10
QUESTION_ID = re.compile(r"[a-z0-9_-]{1,40}")
QUESTION_TEXT_MAX = 500
CAPACITY_MAX = 1_000_000
SEAT_HOLD_DEFAULT = timedelta(hours=24)
SEAT_HOLD_MIN = timedelta(seconds=1)
SEAT_HOLD_MAX = timedelta(days=14)
SERIES_MIN, SERIES_MAX = 2, 52
# How far ahead an activity may be planned.
HORIZON = timedelta(days=10 * 366)
# An activity with no end is taken to last this long (for check-in and no-shows).
DEFAULT_LENGTH = timedelta(hours=2)
UNLIMITED = 0

# What UpdateActivity may change, by field-mask path.
UPDATABLE = (
    "title",
    "description",
    "start_time",
    "end_time",
    "time_zone",
    "capacity",
    "location",
    "join_url",
    "speaker_user_ids",
    "visibility",
    "reminder_offsets",
    "questions",
    "seat_hold",
)
# Changes that move an occurrence of a series: it leaves its rule (a RECURRENCE-ID override).
TIMING = frozenset({"start_time", "end_time"})


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    required: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "required": self.required}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Question:
        return cls(str(value["id"]), str(value["text"]), bool(value.get("required")))


@dataclass(frozen=True)
class Recurrence:
    frequency: Frequency
    count: int

    def to_json(self) -> dict[str, int]:
        return {"frequency": int(self.frequency), "count": self.count}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Recurrence:
        return cls(Frequency(int(value["frequency"])), int(value["count"]))


@dataclass(frozen=True)
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
    time_zone: str = ""
    join_url: str = ""
    speaker_user_ids: tuple[str, ...] = ()
    visibility: Visibility = Visibility.COMMUNITY
    state: ActivityState = ActivityState.SCHEDULED
    cancel_reason: str = ""
    cancelled_at: datetime | None = None
    reminder_offsets: tuple[timedelta, ...] = ()
    questions: tuple[Question, ...] = ()
    seat_hold: timedelta = SEAT_HOLD_DEFAULT
    seats_taken: int = 0
    waitlist_length: int = 0
    check_in_code: str = ""
    retrospective: str = ""
    series_id: str | None = None
    recurrence: Recurrence | None = None
    occurrence_time: datetime | None = None
    # The billing product (an event ticket) a seat is paid with; empty: free.
    ticket_product_id: str = ""

    @property
    def paid(self) -> bool:
        return bool(self.ticket_product_id)

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def ends_at(self) -> datetime:
        """When it ends: its end, or a default length after its start."""
        return self.end_time or self.start_time + DEFAULT_LENGTH

    @property
    def cancelled(self) -> bool:
        return self.state is ActivityState.CANCELLED

    @property
    def moved(self) -> bool:
        """An occurrence of a series that no longer starts where its rule put it."""
        return self.occurrence_time is not None and self.occurrence_time != self.start_time

    def organized_by(self, user_id: str) -> bool:
        return bool(user_id) and (user_id == self.host_user_id or user_id in self.speaker_user_ids)


def new_check_in_code() -> str:
    """Six characters a person reads off a screen: no 0/O or 1/I to confuse."""
    return "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))


def activity_not_found(activity_id: str, community_id: str) -> NotFound:
    """The one answer for an activity that is not there for the caller: missing, in another
    community, or members-only and the caller is not a member."""
    return NotFound(f"activity {activity_id} not found in community {community_id}")


def check_plan(activity: Activity, now: datetime, prefix: str = "") -> None:
    """What every activity must be, as a whole: InvalidArgument naming the first field
    that is not."""
    problems = plan_problems(activity, now, prefix)
    if problems:
        raise InvalidArgument.field(*next(iter(problems.items())))


def plan_problems(activity: Activity, now: datetime, prefix: str = "") -> dict[str, str]:
    problems: dict[str, str] = {}
    if activity.start_time <= now:
        problems[f"{prefix}start_time"] = "must be in the future"
    elif activity.start_time - now > HORIZON:
        problems[f"{prefix}start_time"] = f"must be within {HORIZON.days} days"
    if activity.end_time is not None and activity.end_time <= activity.start_time:
        problems[f"{prefix}end_time"] = "must be after start_time"
    if activity.kind in KINDS_WITH_LOCATION and not activity.location:
        problems[f"{prefix}location"] = "is required"
    if activity.kind in KINDS_WITH_SPEAKERS and not activity.speaker_user_ids:
        problems[f"{prefix}speaker_user_ids"] = "an AMA needs at least one expert"
    return problems


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
    time_zone: str = "",
    join_url: str = "",
    speaker_user_ids: tuple[str, ...] = (),
    visibility: Visibility = Visibility.COMMUNITY,
    reminder_offsets: tuple[timedelta, ...] = (),
    questions: tuple[Question, ...] = (),
    seat_hold: timedelta = SEAT_HOLD_DEFAULT,
    now: datetime | None = None,
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
        created_at=now or datetime.now(UTC),
        time_zone=time_zone,
        join_url=join_url.strip(),
        speaker_user_ids=tuple(dict.fromkeys(speaker_user_ids)),
        visibility=visibility,
        reminder_offsets=tuple(sorted(set(reminder_offsets), reverse=True)),
        questions=questions,
        seat_hold=seat_hold,
        check_in_code=new_check_in_code(),
    )


def occurrences(first: Activity, rule: Recurrence) -> list[Activity]:
    """The activities of a series: `rule.count` of them at the first one's local time in its
    zone (so a weekly 18:00 stays 18:00 across daylight saving), as RFC 5545 expands
    FREQ=WEEKLY or FREQ=MONTHLY with COUNT (a month without the day is left out)."""
    where = zone(first.time_zone) or ZoneInfo("UTC")
    local = first.start_time.astimezone(where).replace(tzinfo=None)
    length = None if first.end_time is None else first.end_time - first.start_time
    series_id = str(uuid.uuid4())
    starts: list[datetime] = []
    step = 0
    while len(starts) < rule.count:
        if rule.frequency is Frequency.WEEKLY:
            starts.append(local + timedelta(weeks=step))
        else:
            month = local.month - 1 + step
            with contextlib.suppress(ValueError):  # no such day in that month
                starts.append(local.replace(year=local.year + month // 12, month=month % 12 + 1))
        step += 1
    made: list[Activity] = []
    for local_start in starts:
        start = local_start.replace(tzinfo=where).astimezone(UTC)
        made.append(
            replace(
                first,
                id=str(uuid.uuid4()) if made else first.id,
                start_time=start,
                end_time=None if length is None else start + length,
                check_in_code=new_check_in_code(),
                series_id=series_id,
                recurrence=rule,
                occurrence_time=start,
            )
        )
    return made


def edit(
    activity: Activity, changes: Mapping[str, Any], etag: str, now: datetime
) -> tuple[Activity, list[str]]:
    """The activity with `changes` applied (paths from UPDATABLE) and the names of the fields
    that changed; the same activity and no names when nothing did."""
    check_scheduled(activity, "changed")
    if etag and etag != activity.etag:
        raise FailedPrecondition(
            f"activity {activity.id} changed since you read it (etag {etag}, now "
            f"{activity.etag}); read it again and reapply your change"
        )
    values = dict(changes)
    for name in ("title", "description", "location", "join_url"):
        if name in values:
            values[name] = values[name].strip()
    if "speaker_user_ids" in values:
        values["speaker_user_ids"] = tuple(dict.fromkeys(values["speaker_user_ids"]))
    if "reminder_offsets" in values:
        values["reminder_offsets"] = tuple(sorted(set(values["reminder_offsets"]), reverse=True))
    changed = sorted(name for name, value in values.items() if getattr(activity, name) != value)
    if not changed:
        return activity, []
    edited = replace(
        activity, **{name: values[name] for name in changed}, version=activity.version + 1
    )
    capacity_changed = "capacity" in changed and edited.capacity != UNLIMITED
    if capacity_changed and edited.capacity < activity.seats_taken:
        raise FailedPrecondition(
            f"activity.capacity: {activity.seats_taken} seats are taken; the capacity "
            f"cannot go below that (asked {edited.capacity})"
        )
    # Start must stay ahead only when it moves: editing a description an hour before the
    # start is fine.
    problems = plan_problems(edited, now, prefix="activity.")
    if "start_time" not in changed:
        problems.pop("activity.start_time", None)
    if problems:
        raise InvalidArgument.field(*next(iter(problems.items())))
    return edited, changed


def cancel(activity: Activity, reason: str, now: datetime) -> Activity:
    check_scheduled(activity, "cancelled")
    if activity.ends_at <= now:
        raise FailedPrecondition(f"activity {activity.id} has ended; it cannot be cancelled")
    return replace(
        activity,
        state=ActivityState.CANCELLED,
        cancel_reason=reason.strip(),
        cancelled_at=now,
        seats_taken=0,
        waitlist_length=0,
        version=activity.version + 1,
    )


def write_retrospective(activity: Activity, text: str) -> Activity:
    return replace(activity, retrospective=text.strip(), version=activity.version + 1)


def check_scheduled(activity: Activity, what: str) -> None:
    if activity.cancelled:
        raise FailedPrecondition(f"activity {activity.id} is cancelled; it cannot be {what}")
