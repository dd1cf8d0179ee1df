"""`studyhall activity`: plan activities, register and cancel, check in, give feedback and
export calendars, in the events service."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from rich.markup import escape
from rich.table import Table

from services.cli.common import (
    AsJson,
    AsUser,
    RequestId,
    call,
    enum_option,
    metadata,
    out,
    show,
    stub,
    timestamp,
)
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc

activity_app = typer.Typer(
    help="Activities of a community: plan, register, check in, feedback, calendars.",
    no_args_is_help=True,
)

PageSize = Annotated[int, typer.Option(help="How many per page (at most 100; 0: the default).")]
PageToken = Annotated[str, typer.Option(help="The next page token a previous page printed.")]
_LEAD = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _request_id(given: str) -> str:
    return given or str(uuid.uuid4())


def _lead(value: str) -> Duration:
    """A lead time such as 24h, 90m or 1d2h."""
    parts = _LEAD.findall(value)
    if not parts or "".join(n + unit for n, unit in parts) != value:
        raise typer.BadParameter(f"--remind: {value!r} is not a lead time such as 24h, 90m or 1d")
    lead = Duration()
    lead.FromTimedelta(sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta()))
    return lead


def _name(enum_type: object, prefix: str, value: int) -> str:
    return str(enum_type.Name(value)).removeprefix(prefix).lower().replace("_", "-")  # type: ignore[attr-defined]


def _when(record: Message, field: str) -> str:
    return getattr(record, field).ToJsonString()[:19] if record.HasField(field) else ""


def _registration_line(registration: pb.Registration) -> str:
    state = _name(pb.RegistrationState, "REGISTRATION_STATE_", registration.state)
    if registration.state == pb.REGISTRATION_STATE_WAITLISTED:
        return f"{state} #{registration.waitlist_position}"
    if registration.state == pb.REGISTRATION_STATE_HELD:
        return f"{state} until {_when(registration, 'hold_until')} (confirm to keep it)"
    return state


def _activities_table(title: str, rows: list[tuple[pb.Activity, str]]) -> Table:
    table = Table(title=title)
    for column in ("id", "kind", "title", "starts (UTC)", "seats", "waiting", "you"):
        table.add_column(column)
    for activity, mine in rows:
        seats = f"{activity.seats_taken}/{activity.capacity}" if activity.capacity else "open"
        table.add_row(
            activity.id,
            _name(pb.ActivityKind, "ACTIVITY_KIND_", activity.kind),
            escape(activity.title),
            _when(activity, "start_time"),
            seats,
            str(activity.waitlist_length),
            mine,
        )
    return table


@activity_app.command("create")
def activity_create(
    community_id: str,
    title: Annotated[str, typer.Option()],
    start: Annotated[
        str, typer.Option(help="ISO 8601 with offset, e.g. 2026-12-01T18:00:00+08:00.")
    ],
    kind: Annotated[
        str, typer.Option(help="online-lecture, offline-meetup, expert-ama or challenge.")
    ] = "online-lecture",
    end: Annotated[str, typer.Option(help="ISO 8601 with offset; optional.")] = "",
    description: str = "",
    capacity: Annotated[int, typer.Option(help="0 means unlimited.")] = 0,
    location: Annotated[str, typer.Option(help="Where an offline meetup happens.")] = "",
    join_url: Annotated[str, typer.Option(help="Where an online lecture happens.")] = "",
    time_zone: Annotated[str, typer.Option(help="IANA zone, e.g. Europe/Berlin.")] = "",
    speaker: Annotated[
        list[str] | None, typer.Option(help="A speaker's user id; repeat for several.")
    ] = None,
    remind: Annotated[
        list[str] | None,
        typer.Option(help="A reminder this long before the start (24h, 90m, 1d); repeat."),
    ] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Schedule an activity in a community; prints its id."""
    request = pb.CreateActivityRequest(
        request_id=_request_id(request_id),
        community_id=community_id,
        kind=enum_option(pb.ActivityKind, "ACTIVITY_KIND_", kind),  # type: ignore[arg-type]
        title=title,
        description=description,
        start_time=timestamp(start, "--start"),
        capacity=capacity,
        location=location,
        join_url=join_url,
        time_zone=time_zone,
        speaker_user_ids=speaker or [],
        reminder_offsets=[_lead(value) for value in remind or []],
    )
    if end:
        request.end_time.CopyFrom(timestamp(end, "--end"))
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(client.CreateActivity, request, metadata(as_user))
    if as_json:
        show(reply.activity, True, "activity")
        return
    typer.echo(reply.activity.id)


@activity_app.command("show")
def activity_show(
    community_id: str, activity_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Show an activity."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.GetActivity,
            pb.GetActivityRequest(community_id=community_id, activity_id=activity_id),
            metadata(as_user),
        )
    show(reply.activity, as_json, "activity")


@activity_app.command("list")
def activity_list(
    community_id: str,
    past: Annotated[bool, typer.Option("--past", help="Those that have ended.")] = False,
    mine: Annotated[
        bool, typer.Option("--mine", help="Yours: registered for or organizing.")
    ] = False,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's activities, soonest first (or the latest first with --past)."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        if mine:
            reply = call(
                client.ListMyActivities,
                pb.ListMyActivitiesRequest(
                    community_id=community_id, page_size=page_size, page_token=page_token
                ),
                metadata(as_user),
            )
        else:
            period = pb.ACTIVITY_PERIOD_PAST if past else pb.ACTIVITY_PERIOD_UPCOMING
            reply = call(
                client.ListActivities,
                pb.ListActivitiesRequest(
                    community_id=community_id,
                    period=period,
                    page_size=page_size,
                    page_token=page_token,
                ),
                metadata(as_user),
            )
    if as_json:
        show(reply, True, "activities")
        return
    if mine:
        rows = [
            (
                entry.activity,
                "organizing"
                if entry.organizing
                else _registration_line(entry.registration)
                if entry.HasField("registration")
                else "invited"
                if entry.invited
                else "",
            )
            for entry in reply.activities
        ]
    else:
        rows = [(activity, "") for activity in reply.activities]
    out.print(_activities_table("your activities" if mine else "activities", rows))
    if reply.next_page_token:
        out.print(f"next page: --page-token {reply.next_page_token}")


@activity_app.command("register")
def activity_register(
    community_id: str,
    activity_id: str,
    answer: Annotated[
        list[str] | None,
        typer.Option(help="QUESTION_ID=TEXT for a registration question; repeat."),
    ] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Register for an activity: a seat, or a place on the waitlist; prints which."""
    answers = []
    for given in answer or []:
        question_id, sep, text = given.partition("=")
        if not sep:
            raise typer.BadParameter(f"--answer: {given!r} is not QUESTION_ID=TEXT")
        answers.append(pb.RegistrationAnswer(question_id=question_id, text=text))
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.Register,
            pb.RegisterRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                activity_id=activity_id,
                answers=answers,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.registration, True, "registration")
        return
    typer.echo(_registration_line(reply.registration))


@activity_app.command("confirm")
def activity_confirm(
    community_id: str,
    activity_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Confirm a seat held for you after the waitlist promoted you."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.ConfirmSeat,
            pb.ConfirmSeatRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                activity_id=activity_id,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.registration, True, "registration")
        return
    typer.echo(_registration_line(reply.registration))


@activity_app.command("cancel")
def activity_cancel(
    community_id: str,
    activity_id: str,
    user: Annotated[
        str, typer.Option("--user", help="Another member's registration (organizers).")
    ] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Cancel your registration (organizers: --user's); the seat goes to the waitlist."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.CancelRegistration,
            pb.CancelRegistrationRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                activity_id=activity_id,
                user_id=user,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.registration, True, "registration")
        return
    typer.echo(_registration_line(reply.registration))


@activity_app.command("call-off")
def activity_call_off(
    community_id: str,
    activity_id: str,
    reason: Annotated[str, typer.Option(help="Told to everyone registered.")],
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Cancel the activity itself (organizers, moderators): every registration ends."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.CancelActivity,
            pb.CancelActivityRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                activity_id=activity_id,
                reason=reason,
            ),
            metadata(as_user),
        )
    show(reply.activity, as_json, "activity")


@activity_app.command("code")
def activity_code(
    community_id: str, activity_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """The check-in code to show at the venue (organizers)."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.GetCheckInCode,
            pb.GetCheckInCodeRequest(community_id=community_id, activity_id=activity_id),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "check-in code")
        return
    typer.echo(reply.code)


@activity_app.command("checkin")
def activity_checkin(
    community_id: str,
    activity_id: str,
    code: Annotated[str, typer.Option(help="The code shown at the venue.")] = "",
    user: Annotated[str, typer.Option("--user", help="Check in this member (organizers).")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Check in with the venue's code, or check in a member as an organizer."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.CheckIn,
            pb.CheckInRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                activity_id=activity_id,
                code=code,
                user_id=user,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.registration, True, "registration")
        return
    typer.echo(_name(pb.Attendance, "ATTENDANCE_", reply.registration.attendance))


@activity_app.command("feedback")
def activity_feedback(
    community_id: str,
    activity_id: str,
    rating: Annotated[int, typer.Option(help="1 to 5; with --summary, leave out.")] = 0,
    recommend: Annotated[int | None, typer.Option(help="Would you recommend it, 0 to 10.")] = None,
    comment: Annotated[str, typer.Option(help="Read by the organizers only.")] = "",
    summary: Annotated[
        bool, typer.Option("--summary", help="Read the summary instead (organizers).")
    ] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Rate an activity you attended; or, with --summary, read its feedback summary."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        if summary:
            read = call(
                client.GetFeedbackSummary,
                pb.GetFeedbackSummaryRequest(community_id=community_id, activity_id=activity_id),
                metadata(as_user),
            )
            show(read.summary, as_json, "feedback summary")
            return
        request = pb.SubmitFeedbackRequest(
            request_id=_request_id(request_id),
            community_id=community_id,
            activity_id=activity_id,
            rating=rating,
            comment=comment,
        )
        if recommend is not None:
            request.would_recommend = recommend
        reply = call(client.SubmitFeedback, request, metadata(as_user))
    show(reply.feedback, as_json, "feedback")


@activity_app.command("ics")
def activity_ics(
    community_id: str,
    mine: Annotated[
        bool, typer.Option("--mine", help="Only yours: registered for or organizing.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    as_user: AsUser = None,
) -> None:
    """The community's activities (or yours) as an iCalendar (RFC 5545) feed."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.ExportCalendar,
            pb.ExportCalendarRequest(community_id=community_id, mine=mine),
            metadata(as_user),
        )
    if output is not None:
        output.write_bytes(reply.calendar)
        return
    typer.echo(reply.calendar.decode(), nl=False)


@activity_app.command("goal")
def activity_goal(
    community_id: str,
    activity_id: str,
    kind: Annotated[str, typer.Option(help="check-in-days, path-completed or accepted-answers.")],
    reward: Annotated[int, typer.Option(help="Points awarded on completion, 1-1000.")],
    target: Annotated[int, typer.Option(help="Days or answers needed (a path: 1).")] = 1,
    path_id: Annotated[str, typer.Option(help="The learning path (path-completed).")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Set a challenge's goal and reward, before it starts (organizers, moderators)."""
    goal = pb.ChallengeGoal(
        kind=enum_option(pb.ChallengeGoalKind, "CHALLENGE_GOAL_KIND_", kind),  # type: ignore[arg-type]
        target=target,
        path_id=path_id,
        reward_points=reward,
    )
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.SetChallengeGoal,
            pb.SetChallengeGoalRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                activity_id=activity_id,
                goal=goal,
            ),
            metadata(as_user),
        )
    show(reply.goal, as_json, "goal")


@activity_app.command("progress")
def activity_progress(
    community_id: str,
    activity_id: str,
    user: Annotated[str, typer.Option("--user", help="Another member's (organizers).")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Your progress in a challenge (organizers: --user's)."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.GetChallengeProgress,
            pb.GetChallengeProgressRequest(
                community_id=community_id, activity_id=activity_id, user_id=user
            ),
            metadata(as_user),
        )
    show(reply.progress, as_json, "progress")


@activity_app.command("leaderboard")
def activity_leaderboard(
    community_id: str,
    activity_id: str,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A challenge's leaderboard: most progress first, the first to complete first."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.ListChallengeLeaderboard,
            pb.ListChallengeLeaderboardRequest(
                community_id=community_id,
                activity_id=activity_id,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "leaderboard")
        return
    table = Table(title="leaderboard")
    for column in ("rank", "member", "progress", "completed (UTC)"):
        table.add_column(column)
    for entry in reply.entries:
        table.add_row(
            str(entry.rank),
            escape(entry.user_id),
            f"{entry.progress}/{entry.target}",
            _when(entry, "complete_time"),
        )
    out.print(table)
    if reply.next_page_token:
        out.print(f"next page: --page-token {reply.next_page_token}")


@activity_app.command("invite")
def activity_invite(
    community_id: str,
    activity_id: str,
    segment_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Invite a members' segment (its members now) to an activity (organizers who are
    moderators in members too)."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.InviteSegment,
            pb.InviteSegmentRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                activity_id=activity_id,
                segment_id=segment_id,
            ),
            metadata(as_user),
        )
    show(reply.invitation, as_json, "invitation")


@activity_app.command("ticket")
def activity_ticket(
    community_id: str,
    activity_id: str,
    product_id: Annotated[
        str, typer.Argument(help="The billing product (an event ticket); empty: free.")
    ] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Sell an activity's seats as a ticket, before anyone registers (organizers): a seat
    is held until the ticket's purchase confirms it."""
    with stub("events", pb_grpc.ActivitiesServiceStub) as client:
        reply = call(
            client.SetActivityTicket,
            pb.SetActivityTicketRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                activity_id=activity_id,
                product_id=product_id,
            ),
            metadata(as_user),
        )
    show(reply.activity, as_json, "activity")
