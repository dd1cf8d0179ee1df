"""Activities as an iCalendar (RFC 5545) feed, written with the icalendar package
(docs/decisions/0029-calendar-feeds.md).

A series is one VEVENT with an RRULE at its first occurrence's local time (DTSTART with the
series' TZID, so daylight saving moves nothing); a skipped (cancelled) occurrence is an
EXDATE; a moved occurrence is a VEVENT of its own with the RECURRENCE-ID of the date the rule
gave it. A cancelled single activity is a VEVENT with STATUS:CANCELLED."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from services.events.activities.domain import Activity, Frequency, zone

PRODUCT = "-//Studyhall//Activities//EN"
_FREQUENCY = {Frequency.WEEKLY: "WEEKLY", Frequency.MONTHLY: "MONTHLY"}


def calendar(name: str, listed: Sequence[Activity], stamp: datetime) -> bytes:
    feed = Calendar()
    feed.add("prodid", PRODUCT)
    feed.add("version", "2.0")
    feed.add("calscale", "GREGORIAN")
    feed.add("x-wr-calname", name)
    series: dict[str, list[Activity]] = defaultdict(list)
    for activity in listed:
        if activity.series_id is None:
            feed.add_component(_event(activity, stamp))
        else:
            series[activity.series_id].append(activity)
    for occurrences in series.values():
        for component in _series(occurrences, stamp):
            feed.add_component(component)
    feed.add_missing_timezones()
    return bytes(feed.to_ical())


def _series(occurrences: list[Activity], stamp: datetime) -> list[Event]:
    ordered = sorted(occurrences, key=lambda a: a.occurrence_time or a.start_time)
    first = ordered[0]
    rule = first.recurrence
    assert rule is not None
    assert first.occurrence_time is not None
    where = _zone(first)
    master = _event(first, stamp, uid=_series_uid(first))
    # The master starts where the rule starts, even when its first occurrence moved.
    master.pop("dtstart")
    master.add("dtstart", first.occurrence_time.astimezone(where))
    if first.end_time is not None:
        master.pop("dtend")
        master.add(
            "dtend", (first.occurrence_time + (first.end_time - first.start_time)).astimezone(where)
        )
    master.pop("status")
    master.add("status", "CONFIRMED")
    master.add("rrule", {"freq": _FREQUENCY[rule.frequency], "count": rule.count})
    overrides = []
    for activity in ordered:
        assert activity.occurrence_time is not None
        if activity.cancelled:
            master.add("exdate", activity.occurrence_time.astimezone(where))
        elif activity.moved or (activity is not first and _differs(activity, first)):
            override = _event(activity, stamp, uid=_series_uid(first))
            override.add("recurrence-id", activity.occurrence_time.astimezone(where))
            overrides.append(override)
    if first.moved and not first.cancelled:
        pass  # its override is among `overrides`; the master's fields are the series'
    return [master, *overrides]


def _differs(activity: Activity, first: Activity) -> bool:
    """An occurrence whose own fields differ from the series' (a changed title, place)."""
    return (activity.title, activity.location, activity.description) != (
        first.title,
        first.location,
        first.description,
    )


def _event(activity: Activity, stamp: datetime, uid: str | None = None) -> Event:
    where = _zone(activity)
    event = Event()
    event.add("uid", uid or f"{activity.id}@studyhall")
    event.add("dtstamp", stamp)
    event.add("dtstart", activity.start_time.astimezone(where))
    if activity.end_time is not None:
        event.add("dtend", activity.end_time.astimezone(where))
    event.add("summary", activity.title)
    if activity.description:
        event.add("description", activity.description)
    if activity.location:
        event.add("location", activity.location)
    if activity.join_url:
        event.add("url", activity.join_url)
    event.add("status", "CANCELLED" if activity.cancelled else "CONFIRMED")
    event.add("sequence", activity.version - 1)
    return event


def _series_uid(first: Activity) -> str:
    return f"{first.series_id}@studyhall"


def _zone(activity: Activity) -> ZoneInfo:
    return zone(activity.time_zone) or ZoneInfo("UTC")
