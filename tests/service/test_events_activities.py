"""Activities from plan to review through the gRPC API, on SQLite and PostgreSQL: seats and
the waitlist under concurrency, held seats that expire and move on, reminders, check-in and
no-shows, feedback and its summary, calendar feeds, bad input and erasure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import icalendar
import pytest
import recurring_ical_events  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select, update

from services.events.store.tables import (
    access,
    activities,
    metadata,
    outbox,
    registrations,
    scheduled_jobs,
)
from services.kit.access import Role
from services.kit.database import utc
from studyhall.events.v1 import activities_events_pb2 as events_pb
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc
from tests.support import rpcs_events
from tests.support.access import grant
from tests.support.catalogue import STORES, changed_tables, new_database, serve, snapshot
from tests.support.services import RunningService
from tests.support.waiting import eventually

pytestmark = pytest.mark.service


@pytest.fixture(scope="module", params=STORES)
async def events(
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningService]:
    """One events service per store for the module; each test has communities of its own.
    No relay runs, so the facts stay in the outbox table for the tests to read."""
    directory = tmp_path_factory.mktemp(f"events-{request.param}")
    with new_database(str(request.param), request, directory) as database_url:
        async with serve(
            rpcs_events.PROCESS,
            database_url=database_url,
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=directory,
        ) as running:
            yield running


def _stub(running: RunningService) -> pb_grpc.ActivitiesServiceStub:
    return pb_grpc.ActivitiesServiceStub(running.channel)


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# Long enough for Cy to confirm on a loaded machine once the seat reaches her.
HOLD = timedelta(seconds=3)


def _lead(delta: timedelta) -> Duration:
    value = Duration()
    value.FromTimedelta(delta)
    return value


async def _community(running: RunningService, *members: str) -> str:
    community_id = str(uuid.uuid4())
    await grant(running, community_id, "host", Role.MODERATOR)
    for member in members:
        await grant(running, community_id, member, Role.MEMBER)
    return community_id


async def _meetup(
    running: RunningService, community_id: str, *, start: datetime | None = None, **fields: Any
) -> pb.Activity:
    start = start or datetime.now(UTC) + timedelta(days=3)
    reply = await _stub(running).CreateActivity(
        pb.CreateActivityRequest(
            community_id=community_id,
            kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
            title="Conversation club",
            location="Café Linde",
            start_time=_at(start),
            end_time=_at(start + timedelta(hours=1)),
            **fields,
        ),
        metadata=running.auth("host"),
    )
    activity: pb.Activity = reply.activity
    return activity


async def _register(running: RunningService, community_id: str, activity_id: str, user: str) -> Any:
    return (
        await _stub(running).Register(
            pb.RegisterRequest(community_id=community_id, activity_id=activity_id),
            metadata=running.auth(user),
        )
    ).registration


async def _facts(running: RunningService, community_id: str, name: str) -> list[Any]:
    kind = getattr(events_pb, name)
    async with running.deps.database.read() as session:
        rows = await session.execute(
            select(outbox.c.payload)
            .where(
                outbox.c.community_id == community_id,
                outbox.c.event_type == kind.DESCRIPTOR.full_name,
            )
            .order_by(outbox.c.seq)
        )
        return [kind.FromString(row.payload) for row in rows]


async def _get(running: RunningService, community_id: str, activity_id: str) -> pb.Activity:
    reply = await _stub(running).GetActivity(
        pb.GetActivityRequest(community_id=community_id, activity_id=activity_id),
        metadata=running.auth("host"),
    )
    activity: pb.Activity = reply.activity
    return activity


async def test_last_seats_under_200_concurrent_registrations_hold_and_the_waitlist_is_fifo(
    events: RunningService,
) -> None:
    people = [f"m{n:03d}" for n in range(200)]
    community_id = await _community(events)
    for person in people:
        await grant(events, community_id, person, Role.MEMBER)
    activity = await _meetup(events, community_id, capacity=15)
    answers = await asyncio.gather(
        *(_register(events, community_id, activity.id, person) for person in people)
    )
    seated = [a for a in answers if a.state == pb.REGISTRATION_STATE_SEATED]
    waiting = [a for a in answers if a.state == pb.REGISTRATION_STATE_WAITLISTED]
    assert len(seated) == 15
    assert len(waiting) == 185
    assert sorted(a.waitlist_position for a in waiting) == list(range(1, 186))
    shown = await _get(events, community_id, activity.id)
    assert (shown.seats_taken, shown.waitlist_length) == (15, 185)

    # A seat freed goes to the first waiting, held for them; the others move up.
    first = min(waiting, key=lambda a: a.waitlist_position)
    await _stub(events).CancelRegistration(
        pb.CancelRegistrationRequest(community_id=community_id, activity_id=activity.id),
        metadata=events.auth(seated[0].user_id),
    )
    listed = await _stub(events).ListRegistrations(
        pb.ListRegistrationsRequest(
            community_id=community_id, activity_id=activity.id, page_size=100
        ),
        metadata=events.auth("host"),
    )
    by_user = {r.user_id: r for r in listed.registrations}
    if first.user_id in by_user:
        assert by_user[first.user_id].state == pb.REGISTRATION_STATE_HELD
    [promoted] = await _facts(events, community_id, "Promoted")
    assert promoted.user_id == first.user_id
    shown = await _get(events, community_id, activity.id)
    assert (shown.seats_taken, shown.waitlist_length) == (15, 184)


async def test_a_held_seat_expires_and_moves_on_and_a_confirmed_one_stays(
    events: RunningService,
) -> None:
    community_id = await _community(events, "ann", "bob", "cy")
    activity = await _meetup(events, community_id, capacity=1, seat_hold=_lead(HOLD))
    await _register(events, community_id, activity.id, "ann")
    assert (await _register(events, community_id, activity.id, "bob")).waitlist_position == 1
    assert (await _register(events, community_id, activity.id, "cy")).waitlist_position == 2
    await _stub(events).CancelRegistration(
        pb.CancelRegistrationRequest(community_id=community_id, activity_id=activity.id),
        metadata=events.auth("ann"),
    )

    async def moved_on() -> bool:
        return [p.user_id for p in await _facts(events, community_id, "Promoted")] == ["bob", "cy"]

    # Bob does not confirm in time: his hold ends and Cy gets the seat, held for her.
    await eventually(moved_on, "the seat moves on from bob to cy")
    reasons = [c.reason for c in await _facts(events, community_id, "RegistrationCancelled")]
    assert events_pb.REGISTRATION_CANCEL_REASON_HOLD_EXPIRED in reasons
    confirmed = await _stub(events).ConfirmSeat(
        pb.ConfirmSeatRequest(community_id=community_id, activity_id=activity.id),
        metadata=events.auth("cy"),
    )
    assert confirmed.registration.state == pb.REGISTRATION_STATE_SEATED
    await asyncio.sleep(HOLD.total_seconds() + 0.5)  # past the end of her hold
    shown = await _get(events, community_id, activity.id)
    assert (shown.seats_taken, shown.waitlist_length) == (1, 0)


async def test_reminders_fire_once_move_with_the_start_and_go_with_a_cancellation(
    events: RunningService,
) -> None:
    community_id = await _community(events, "ann")
    start = datetime.now(UTC) + timedelta(minutes=60, seconds=4)  # due after a slow create
    activity = await _meetup(
        events,
        community_id,
        start=start,
        reminder_offsets=[_lead(timedelta(hours=1)), _lead(timedelta(minutes=30))],
    )
    await _register(events, community_id, activity.id, "ann")

    async def reminded() -> bool:
        return len(await _facts(events, community_id, "ActivityReminderDue")) == 1

    await eventually(reminded, "the one-hour reminder is due")
    [due] = await _facts(events, community_id, "ActivityReminderDue")
    assert (due.user_id, due.lead_time.ToTimedelta()) == ("ann", timedelta(hours=1))
    # Moved a day later: its reminders move with it; cancelled: they go.
    moved = await _stub(events).UpdateActivity(
        pb.UpdateActivityRequest(
            community_id=community_id,
            activity_id=activity.id,
            activity=pb.Activity(
                start_time=_at(start + timedelta(days=1)),
                end_time=_at(start + timedelta(days=1, hours=1)),
            ),
            update_mask=FieldMask(paths=["start_time", "end_time"]),
            etag=activity.etag,
        ),
        metadata=events.auth("host"),
    )
    assert moved.activity.version == 2
    jobs = await _jobs(events, activity.id)
    later = start + timedelta(days=1)
    assert jobs["remind"] == [later - timedelta(hours=1), later - timedelta(minutes=30)]
    await _stub(events).CancelActivity(
        pb.CancelActivityRequest(
            community_id=community_id, activity_id=activity.id, reason="Room flooded"
        ),
        metadata=events.auth("host"),
    )
    assert await _jobs(events, activity.id) == {}
    [cancelled] = await _facts(events, community_id, "RegistrationCancelled")
    assert cancelled.reason == events_pb.REGISTRATION_CANCEL_REASON_ACTIVITY_CANCELLED
    assert len(await _facts(events, community_id, "ActivityReminderDue")) == 1


async def _jobs(running: RunningService, activity_id: str) -> dict[str, list[datetime]]:
    """The activity's reminder jobs by kind, with their due times."""
    async with running.deps.database.read() as session:
        rows = await session.execute(
            select(scheduled_jobs).where(
                scheduled_jobs.c.key.like(f"{activity_id}/%"), scheduled_jobs.c.kind == "remind"
            )
        )
        found: dict[str, list[datetime]] = {}
        for row in rows:
            found.setdefault(row.kind, []).append(utc(row.due_at))
    return {kind: sorted(due) for kind, due in found.items()}


async def test_check_in_by_code_and_by_host_no_shows_at_the_end_then_feedback_and_summary(
    events: RunningService,
) -> None:
    community_id = await _community(events, "ann", "bob", "cy", "dee")
    start = datetime.now(UTC) + timedelta(seconds=4)  # still ahead when a slow machine creates
    activity = (
        await _stub(events).CreateActivity(
            pb.CreateActivityRequest(
                community_id=community_id,
                kind=pb.ACTIVITY_KIND_ONLINE_LECTURE,
                title="Phonetics for beginners",
                join_url="https://meet.example.org/phonetics",
                start_time=_at(start),
                # Long enough for the check-ins below on a loaded machine.
                end_time=_at(start + timedelta(seconds=5)),
            ),
            metadata=events.auth("host"),
        )
    ).activity
    other = await _meetup(events, community_id)
    for person in ("ann", "bob", "cy"):
        await _register(events, community_id, activity.id, person)
    code = (
        await _stub(events).GetCheckInCode(
            pb.GetCheckInCodeRequest(community_id=community_id, activity_id=activity.id),
            metadata=events.auth("host"),
        )
    ).code
    other_code = (
        await _stub(events).GetCheckInCode(
            pb.GetCheckInCodeRequest(community_id=community_id, activity_id=other.id),
            metadata=events.auth("host"),
        )
    ).code
    before = await snapshot(events, metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(events).CheckIn(
            pb.CheckInRequest(community_id=community_id, activity_id=activity.id, code=other_code),
            metadata=events.auth("ann"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "code" in (caught.value.details() or "")
    assert changed_tables(before, await snapshot(events, metadata)) == []

    checked = await _stub(events).CheckIn(
        pb.CheckInRequest(community_id=community_id, activity_id=activity.id, code=code.lower()),
        metadata=events.auth("ann"),
    )
    assert checked.registration.attendance == pb.ATTENDANCE_ATTENDED
    # A walk-in the host admits gets a registration.
    await _stub(events).CheckIn(
        pb.CheckInRequest(community_id=community_id, activity_id=activity.id, user_id="dee"),
        metadata=events.auth("host"),
    )

    async def ended() -> bool:
        return len(await _facts(events, community_id, "NoShowRecorded")) == 2

    await eventually(ended, "bob and cy are no-shows at the end")
    recorded = await _facts(events, community_id, "AttendanceRecorded")
    assert [(r.user_id, r.recorded_by_user_id) for r in recorded] == [("ann", ""), ("dee", "host")]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(events).SubmitFeedback(
            pb.SubmitFeedbackRequest(community_id=community_id, activity_id=activity.id, rating=6),
            metadata=events.auth("ann"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rating" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(events).SubmitFeedback(
            pb.SubmitFeedbackRequest(community_id=community_id, activity_id=activity.id, rating=3),
            metadata=events.auth("bob"),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for person, rating, recommend in (("ann", 5, 10), ("dee", 3, 5)):
        await _stub(events).SubmitFeedback(
            pb.SubmitFeedbackRequest(
                community_id=community_id,
                activity_id=activity.id,
                rating=rating,
                would_recommend=recommend,
                comment=f"{person}: more examples please",
            ),
            metadata=events.auth(person),
        )
    [first, _] = await _facts(events, community_id, "FeedbackSubmitted")
    assert (first.overall_rating, first.would_recommend) == (5, 10)
    await _stub(events).WriteRetrospective(
        pb.WriteRetrospectiveRequest(
            community_id=community_id, activity_id=activity.id, retrospective="Too short."
        ),
        metadata=events.auth("host"),
    )
    summary = (
        await _stub(events).GetFeedbackSummary(
            pb.GetFeedbackSummaryRequest(community_id=community_id, activity_id=activity.id),
            metadata=events.auth("host"),
        )
    ).summary
    assert (summary.registered, summary.attended, summary.no_shows) == (4, 2, 2)
    assert summary.attendance_rate == 0.5
    assert summary.average_rating == 4.0
    assert summary.nps == 0.0  # one promoter, one detractor
    assert sorted(summary.comments) == ["ann: more examples please", "dee: more examples please"]
    assert summary.retrospective == "Too short."

    # Ann erases her data: her registration and feedback stay, without her.
    await _stub(events).EraseMyData(
        pb.EraseMyDataRequest(community_id=community_id, confirm=True), metadata=events.auth("ann")
    )
    after = (
        await _stub(events).GetFeedbackSummary(
            pb.GetFeedbackSummaryRequest(community_id=community_id, activity_id=activity.id),
            metadata=events.auth("host"),
        )
    ).summary
    assert (after.registered, after.attended, after.feedback_count) == (4, 2, 2)
    async with events.deps.database.read() as session:
        users = set(
            await session.scalars(
                select(registrations.c.user_id).where(registrations.c.activity_id == activity.id)
            )
        )
    assert users == {None, "bob", "cy", "dee"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"start": timedelta(hours=-1)}, "start_time"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"capacity": -3}, "capacity"),
        ({"kind": pb.ACTIVITY_KIND_EXPERT_AMA}, "speaker_user_ids"),
    ],
)
async def test_bad_plans_are_refused_naming_the_field_and_nothing_is_written(
    events: RunningService, fields: dict[str, Any], field: str
) -> None:
    fields = dict(fields)  # shared by both stores' runs
    community_id = await _community(events)
    start = datetime.now(UTC) + fields.pop("start", timedelta(days=2))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(events).CreateActivity(
            pb.CreateActivityRequest(
                community_id=community_id,
                kind=fields.pop("kind", pb.ACTIVITY_KIND_ONLINE_LECTURE),
                title="Idioms",
                start_time=_at(start),
                **fields,
            ),
            metadata=events.auth("host"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")
    # Nothing written for the community (other tests' scheduled work may run meanwhile).
    async with events.deps.database.read() as session:
        for table in (activities, outbox, scheduled_jobs):
            found = await session.scalar(
                select(func.count()).select_from(table).where(table.c.community_id == community_id)
            )
            assert found == 0, table.name


async def test_capacity_below_seats_taken_is_refused_and_raising_it_promotes(
    events: RunningService,
) -> None:
    community_id = await _community(events, "ann", "bob", "cy")
    activity = await _meetup(events, community_id, capacity=2)
    for person in ("ann", "bob", "cy"):
        await _register(events, community_id, activity.id, person)

    async def set_capacity(capacity: int) -> pb.Activity:
        reply = await _stub(events).UpdateActivity(
            pb.UpdateActivityRequest(
                community_id=community_id,
                activity_id=activity.id,
                activity=pb.Activity(capacity=capacity),
                update_mask=FieldMask(paths=["capacity"]),
            ),
            metadata=events.auth("host"),
        )
        changed: pb.Activity = reply.activity
        return changed

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await set_capacity(1)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "capacity" in (caught.value.details() or "")
    raised = await set_capacity(3)
    assert (raised.seats_taken, raised.waitlist_length) == (3, 0)
    [promoted] = await _facts(events, community_id, "Promoted")
    assert promoted.user_id == "cy"


async def test_muted_moderator_cannot_schedule_and_a_level_can_unlock_it(
    events: RunningService,
) -> None:
    community_id = await _community(events, "ann")
    async with events.deps.database.write() as session:
        await session.execute(
            update(access.roles)
            .where(access.roles.c.community_id == community_id, access.roles.c.user_id == "host")
            .values(muted_until=datetime.now(UTC) + timedelta(days=1))
        )
    await events.deps.redis.call(
        lambda c: c.delete(f"studyhall:events:standing:{community_id}:host"), None
    )
    for user in ("host", "ann"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _meetup(events, community_id) if user == "host" else await _stub(
                events
            ).CreateActivity(
                pb.CreateActivityRequest(
                    community_id=community_id,
                    kind=pb.ACTIVITY_KIND_ONLINE_LECTURE,
                    title="x",
                    start_time=_at(datetime.now(UTC) + timedelta(days=1)),
                ),
                metadata=events.auth(user),
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_weekly_series_with_a_skipped_and_a_moved_date_exports_as_ics_that_expands(
    events: RunningService,
) -> None:
    community_id = await _community(events, "ann")
    first = datetime(2030, 3, 4, 18, 0, tzinfo=UTC)  # a Monday, 19:00 in Berlin
    made = await _stub(events).CreateActivity(
        pb.CreateActivityRequest(
            community_id=community_id,
            kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
            title="Grammar night",
            location="Library",
            time_zone="Europe/Berlin",
            start_time=_at(first),
            end_time=_at(first + timedelta(hours=2)),
            recurrence=pb.Recurrence(frequency=pb.RECURRENCE_FREQUENCY_WEEKLY, count=6),
        ),
        metadata=events.auth("host"),
    )
    occurrences = list(made.occurrences)
    assert len(occurrences) == 6
    # After the switch to summer time it is still 19:00 in Berlin: 17:00 UTC.
    assert occurrences[4].start_time.ToDatetime(tzinfo=UTC) == datetime(
        2030, 4, 1, 17, 0, tzinfo=UTC
    )
    await _stub(events).CancelActivity(
        pb.CancelActivityRequest(
            community_id=community_id, activity_id=occurrences[1].id, reason="Holiday"
        ),
        metadata=events.auth("host"),
    )
    moved_start = occurrences[2].start_time.ToDatetime(tzinfo=UTC) + timedelta(days=1)
    await _stub(events).UpdateActivity(
        pb.UpdateActivityRequest(
            community_id=community_id,
            activity_id=occurrences[2].id,
            activity=pb.Activity(
                start_time=_at(moved_start), end_time=_at(moved_start + timedelta(hours=2))
            ),
            update_mask=FieldMask(paths=["start_time", "end_time"]),
        ),
        metadata=events.auth("host"),
    )
    await _register(events, community_id, occurrences[0].id, "ann")
    for mine in (False, True):
        feed = await _stub(events).ExportCalendar(
            pb.ExportCalendarRequest(community_id=community_id, mine=mine),
            metadata=events.auth("ann"),
        )
        assert feed.content_type == "text/calendar"
        parsed = icalendar.Calendar.from_ical(feed.calendar)
        expanded = recurring_ical_events.of(parsed).between(date(2030, 3, 1), date(2030, 5, 1))
        starts = sorted(event["DTSTART"].dt.astimezone(UTC) for event in expanded)
        expected = [
            o.start_time.ToDatetime(tzinfo=UTC)
            for n, o in enumerate(occurrences)
            if n not in (1, 2)
        ]
        assert starts == sorted([*expected, moved_start])
    raw = feed.calendar.decode()
    assert "RRULE:FREQ=WEEKLY;COUNT=6" in raw
    assert "EXDATE;TZID=Europe/Berlin:20300311T190000" in raw
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20300318T190000" in raw


async def test_upcoming_past_and_my_activities_are_paged(events: RunningService) -> None:
    community_id = await _community(events, "ann")
    planned = [
        await _meetup(events, community_id, start=datetime.now(UTC) + timedelta(days=n))
        for n in (3, 1, 2)
    ]
    await _register(events, community_id, planned[0].id, "ann")
    first = await _stub(events).ListActivities(
        pb.ListActivitiesRequest(community_id=community_id, page_size=2),
        metadata=events.auth("ann"),
    )
    rest = await _stub(events).ListActivities(
        pb.ListActivitiesRequest(
            community_id=community_id, page_size=2, page_token=first.next_page_token
        ),
        metadata=events.auth("ann"),
    )
    assert [a.id for a in [*first.activities, *rest.activities]] == [
        planned[1].id,
        planned[2].id,
        planned[0].id,
    ]
    assert not rest.next_page_token
    past = await _stub(events).ListActivities(
        pb.ListActivitiesRequest(community_id=community_id, period=pb.ACTIVITY_PERIOD_PAST),
        metadata=events.auth("ann"),
    )
    assert list(past.activities) == []
    mine = await _stub(events).ListMyActivities(
        pb.ListMyActivitiesRequest(community_id=community_id), metadata=events.auth("ann")
    )
    assert [(m.activity.id, m.registration.state) for m in mine.activities] == [
        (planned[0].id, pb.REGISTRATION_STATE_SEATED)
    ]
