"""`studyhall calendar`: drafts scheduled to go live at a local time, the calendar by local
day, and recurring themes, in the content service."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

import typer
from google.protobuf.message import Message
from rich.markup import escape
from rich.table import Table

from services.cli.common import AsJson, AsUser, RequestId, call, enum_option, metadata, out, show
from services.cli.common import stub as service_stub
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc

calendar_app = typer.Typer(
    help="The content calendar: scheduled drafts and recurring themes.", no_args_is_help=True
)

TimeZone = Annotated[
    str, typer.Option(help="An IANA time zone, e.g. Europe/Berlin; default: the community's.")
]


def _request_id(given: str) -> str:
    return given or str(uuid.uuid4())


def content(method: str, request: Message, as_user: str | None) -> Any:
    """Call one method of the content service as `as_user`."""
    with service_stub("content", pb_grpc.ContentServiceStub) as client:
        handler: Callable[..., Any] = getattr(client, method)
        return call(handler, request, metadata(as_user))


def when(record: Message, field: str) -> str:
    return getattr(record, field).ToJsonString()[:19] if record.HasField(field) else ""


@calendar_app.command("schedule")
def schedule(
    community_id: str,
    post_id: str,
    at: Annotated[str, typer.Option("--at", help="Local date and time, e.g. 2027-01-04T09:00.")],
    time_zone: TimeZone = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Schedule a draft of yours to go live at a local time (or move its schedule)."""
    reply = content(
        "SchedulePost",
        pb.SchedulePostRequest(
            request_id=_request_id(request_id),
            community_id=community_id,
            post_id=post_id,
            local_time=at,
            time_zone=time_zone,
        ),
        as_user,
    )
    if as_json:
        show(reply.post, True, "post")
        return
    typer.echo(when(reply.post, "scheduled_time"))


@calendar_app.command("unschedule")
def unschedule(
    community_id: str,
    post_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Take a draft off the calendar; it stays a draft."""
    reply = content(
        "UnschedulePost",
        pb.UnschedulePostRequest(
            request_id=_request_id(request_id), community_id=community_id, post_id=post_id
        ),
        as_user,
    )
    show(reply.post, as_json, "post")


@calendar_app.command("show")
def calendar_show(
    community_id: str,
    start: Annotated[str, typer.Option(help="The first local day, e.g. 2027-01-04.")],
    days: Annotated[int, typer.Option(help="How many days: 7 a week, up to 62.")] = 7,
    time_zone: TimeZone = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """What is planned, published and missed, by local day (moderators)."""
    reply = content(
        "ListCalendar",
        pb.ListCalendarRequest(
            community_id=community_id, start_date=start, days=days, time_zone=time_zone
        ),
        as_user,
    )
    if as_json:
        show(reply, True, "calendar")
        return
    table = Table(title=f"calendar from {start} ({len(reply.entries)})")
    for column in ("day", "time", "status", "post", "title", "why missed"):
        table.add_column(column)
    for entry in reply.entries:
        table.add_row(
            entry.local_date,
            when(entry, "time"),
            pb.CalendarStatus.Name(entry.status).removeprefix("CALENDAR_STATUS_").lower(),
            entry.post_id,
            escape(entry.title),
            escape(entry.missed_reason),
        )
    out.print(table)


@calendar_app.command("theme-create")
def theme_create(
    community_id: str,
    title: Annotated[str, typer.Option(help='Each post\'s title; "{date}": its local date.')],
    body: Annotated[str, typer.Option(help='Each post\'s body; "{date}" as in the title.')],
    weekday: Annotated[int, typer.Option(help="ISO weekday: 1 Monday ... 7 Sunday.")],
    at: Annotated[str, typer.Option("--at", help="Local time of day, e.g. 09:00.")],
    kind: Annotated[str, typer.Option(help="article or question.")] = "article",
    topic: Annotated[str, typer.Option(help="A topic id of the community.")] = "",
    time_zone: TimeZone = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Start a recurring theme: a post from the template every week (admins); prints its id."""
    reply = content(
        "CreateTheme",
        pb.CreateThemeRequest(
            request_id=_request_id(request_id),
            community_id=community_id,
            theme=pb.Theme(
                title=title,
                body=body,
                kind=enum_option(pb.PostKind, "POST_KIND_", kind),  # type: ignore[arg-type]
                topic_id=topic,
                weekday=weekday,
                local_time=at,
                time_zone=time_zone,
            ),
        ),
        as_user,
    )
    if as_json:
        show(reply.theme, True, "theme")
        return
    typer.echo(reply.theme.id)


@calendar_app.command("themes")
def themes(
    community_id: str,
    page_size: Annotated[int, typer.Option(help="How many per page (at most 100).")] = 0,
    page_token: Annotated[str, typer.Option(help="The next page token printed.")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's recurring themes (moderators)."""
    reply = content(
        "ListThemes",
        pb.ListThemesRequest(community_id=community_id, page_size=page_size, page_token=page_token),
        as_user,
    )
    if as_json:
        show(reply, True, "themes")
        return
    table = Table(title=f"themes ({len(reply.themes)})")
    for column in ("id", "title", "weekday", "time", "zone", "next", "published", "active"):
        table.add_column(column)
    for theme in reply.themes:
        table.add_row(
            theme.id,
            escape(theme.title),
            str(theme.weekday),
            theme.local_time,
            theme.time_zone,
            theme.next_local_date,
            str(theme.published_count),
            "yes" if theme.active else "ended",
        )
    out.print(table)
    if reply.next_page_token:
        out.print(f"next page: --page-token {reply.next_page_token}")


@calendar_app.command("theme-end")
def theme_end(
    community_id: str,
    theme_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """End a recurring theme: no occurrence after this (admins)."""
    reply = content(
        "EndTheme",
        pb.EndThemeRequest(
            request_id=_request_id(request_id), community_id=community_id, theme_id=theme_id
        ),
        as_user,
    )
    show(reply.theme, as_json, "theme")
