"""Activities to and from the contract: fields checked with one wording for create and
update, and the Activity message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.events.activities import domain
from services.kit.timestamps import timestamp, timestamp_or_none
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb


def read_time(problems: Violations, field: str, stamp: Timestamp) -> datetime | None:
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except ValueError:
        problems.add(field, "must be a valid timestamp between years 1 and 9999")
        return None


def read_fields(
    problems: Violations, source: Any, paths: list[str], prefix: str = ""
) -> dict[str, Any]:
    """The values of `paths` in `source` (a CreateActivityRequest or an Activity), checked;
    problems go to `problems` named `prefix` + field."""
    values: dict[str, Any] = {}
    for path in paths:
        name = f"{prefix}{path}"
        if path == "title":
            problems.text(name, source.title, max_length=domain.TITLE_MAX)
            values[path] = source.title
        elif path == "description":
            problems.text(
                name, source.description, required=False, max_length=domain.DESCRIPTION_MAX
            )
            values[path] = source.description
        elif path == "location":
            problems.text(name, source.location, required=False, max_length=domain.LOCATION_MAX)
            values[path] = source.location
        elif path == "join_url":
            url = source.join_url
            if len(url) > domain.URL_MAX:
                problems.add(name, f"must be at most {domain.URL_MAX} characters")
            elif url and not url.startswith(("https://", "http://")):
                problems.add(name, "must be an http(s) URL")
            values[path] = url
        elif path in ("start_time", "end_time"):
            if not source.HasField(path):
                if path == "start_time":
                    problems.add(name, "is required")
                values[path] = None
            else:
                values[path] = read_time(problems, name, getattr(source, path))
        elif path == "time_zone":
            if source.time_zone and domain.zone(source.time_zone) is None:
                problems.add(name, f"{source.time_zone!r:.80} is not an IANA time zone")
            values[path] = source.time_zone
        elif path == "capacity":
            if not 0 <= source.capacity <= domain.CAPACITY_MAX:
                problems.add(name, f"must be 0 (unlimited) to {domain.CAPACITY_MAX}")
            values[path] = source.capacity
        elif path == "speaker_user_ids":
            speakers = list(source.speaker_user_ids)
            if len(speakers) > domain.SPEAKERS_MAX:
                problems.add(name, f"must have at most {domain.SPEAKERS_MAX} entries")
            for index, user in enumerate(speakers):
                if not user or len(user) > domain.USER_ID_MAX or not user.isprintable():
                    problems.add(f"{name}[{index}]", "must be a user id of 1-200 characters")
            values[path] = tuple(speakers)
        elif path == "visibility":
            problems.enum(name, source.visibility, domain.Visibility, "ActivityVisibility")
            values[path] = domain.Visibility(source.visibility or domain.Visibility.COMMUNITY)
            if source.visibility not in (0, *domain.Visibility):
                values[path] = domain.Visibility.COMMUNITY
        elif path == "reminder_offsets":
            offsets = []
            if len(source.reminder_offsets) > domain.REMINDERS_MAX:
                problems.add(name, f"must have at most {domain.REMINDERS_MAX} entries")
            for index, offset in enumerate(source.reminder_offsets):
                lead = _duration(offset)
                if lead is None or not timedelta(minutes=1) <= lead <= domain.REMINDER_MAX:
                    problems.add(f"{name}[{index}]", "must be from 1 minute to 30 days")
                else:
                    offsets.append(lead)
            values[path] = tuple(offsets)
        elif path == "questions":
            values[path] = _questions(problems, source.questions, name)
        elif path == "seat_hold":
            hold = domain.SEAT_HOLD_DEFAULT
            if source.HasField("seat_hold"):
                found = _duration(source.seat_hold)
                if found is None or not domain.SEAT_HOLD_MIN <= found <= domain.SEAT_HOLD_MAX:
                    problems.add(name, "must be from 1 second to 14 days")
                else:
                    hold = found
            values[path] = hold
    return values


def _duration(value: Duration) -> timedelta | None:
    if value.nanos < 0 or value.seconds < 0 or value.seconds > 10**9:
        return None
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def _questions(problems: Violations, questions: Any, name: str) -> tuple[domain.Question, ...]:
    found: list[domain.Question] = []
    if len(questions) > domain.QUESTIONS_MAX:
        problems.add(name, f"must have at most {domain.QUESTIONS_MAX} entries")
    seen: set[str] = set()
    for index, question in enumerate(questions):
        if not domain.QUESTION_ID.fullmatch(question.id):
            problems.add(f"{name}[{index}].id", "must be 1-40 of a-z, 0-9, '-' or '_'")
        elif question.id in seen:
            problems.add(f"{name}[{index}].id", f"{question.id!r} is asked twice")
        seen.add(question.id)
        problems.text(f"{name}[{index}].text", question.text, max_length=domain.QUESTION_TEXT_MAX)
        found.append(domain.Question(question.id, question.text.strip(), question.required))
    return tuple(found)


def to_proto(activity: domain.Activity) -> pb.Activity:
    recurrence = None
    if activity.recurrence is not None:
        recurrence = pb.Recurrence(
            frequency=pb.RecurrenceFrequency.ValueType(activity.recurrence.frequency),
            count=activity.recurrence.count,
        )
    return pb.Activity(
        id=activity.id,
        community_id=activity.community_id,
        host_user_id=activity.host_user_id,
        kind=pb.ActivityKind.ValueType(activity.kind),
        title=activity.title,
        description=activity.description,
        start_time=timestamp(activity.start_time),
        end_time=timestamp_or_none(activity.end_time),
        capacity=activity.capacity,
        location=activity.location,
        create_time=timestamp(activity.created_at),
        version=activity.version,
        time_zone=activity.time_zone,
        join_url=activity.join_url,
        speaker_user_ids=list(activity.speaker_user_ids),
        visibility=pb.ActivityVisibility.ValueType(activity.visibility),
        etag=activity.etag,
        state=pb.ActivityState.ValueType(activity.state),
        cancel_reason=activity.cancel_reason,
        cancel_time=timestamp_or_none(activity.cancelled_at),
        seats_taken=activity.seats_taken,
        waitlist_length=activity.waitlist_length,
        reminder_offsets=[_to_duration(offset) for offset in activity.reminder_offsets],
        questions=[
            pb.RegistrationQuestion(id=q.id, text=q.text, required=q.required)
            for q in activity.questions
        ],
        seat_hold=_to_duration(activity.seat_hold),
        series_id=activity.series_id or "",
        recurrence=recurrence,
        occurrence_time=timestamp_or_none(activity.occurrence_time),
        ticket_product_id=activity.ticket_product_id,
    )


def _to_duration(value: timedelta) -> Duration:
    duration = Duration()
    duration.FromTimedelta(value)
    return duration
