"""`studyhall care`: a community's member-care settings and the signals it sent."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import typer
from google.protobuf.json_format import MessageToDict
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
)
from studyhall.members.v1 import care_events_pb2 as events
from studyhall.members.v1 import care_service_pb2 as pb
from studyhall.members.v1 import care_service_pb2_grpc as pb_grpc

care_app = typer.Typer(
    help="Member care: nudges for inactive members, streak reminders, greetings.",
    no_args_is_help=True,
)
settings_app = typer.Typer(help="What the care sweep sends in a community.", no_args_is_help=True)
care_app.add_typer(settings_app, name="settings")


@settings_app.command("show")
def settings_show(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """The community's care settings (moderators and above)."""
    with stub("members", pb_grpc.CareServiceStub) as client:
        reply = call(
            client.GetCareSettings,
            pb.GetCareSettingsRequest(community_id=community_id),
            metadata(as_user),
        )
    show(reply.settings, as_json, "care settings")


@settings_app.command("set")
def settings_set(
    community_id: str,
    inactive_after_days: Annotated[
        int | None, typer.Option(help="1-365 days without activity; 0 turns the nudge off.")
    ] = None,
    streak_reminder_hour: Annotated[
        int | None, typer.Option(help="Members' local hour (0-23) for streak reminders.")
    ] = None,
    birthdays: Annotated[
        bool | None, typer.Option("--birthdays/--no-birthdays", help="Birthday greetings.")
    ] = None,
    holiday: Annotated[
        list[str] | None,
        typer.Option(help="MM-DD=Name or YYYY-MM-DD=Name; repeat; replaces the holidays."),
    ] = None,
    clear_holidays: Annotated[bool, typer.Option(help="Remove every holiday.")] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Change some care settings (admins and above); the others keep their values."""
    with stub("members", pb_grpc.CareServiceStub) as client:
        current = call(
            client.GetCareSettings,
            pb.GetCareSettingsRequest(community_id=community_id),
            metadata(as_user),
        ).settings
        wanted = pb.CareSettings()
        wanted.CopyFrom(current)
        if inactive_after_days is not None:
            wanted.inactive_after_days = inactive_after_days
        if streak_reminder_hour is not None:
            wanted.streak_reminder_hour = streak_reminder_hour
        if birthdays is not None:
            wanted.birthdays = birthdays
        if holiday or clear_holidays:
            wanted.ClearField("holidays")
            wanted.holidays.extend(_holiday(text) for text in holiday or [])
        reply = call(
            client.SetCareSettings,
            pb.SetCareSettingsRequest(
                settings=wanted,
                expected_version=current.version,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    show(reply.settings, as_json, "care settings")


@care_app.command("signals")
def signals(
    community_id: str,
    kind: Annotated[
        str, typer.Option(help="member-inactive, streak-at-risk or greeting; all by default.")
    ] = "",
    limit: Annotated[int, typer.Option(help="How many, newest first (at most 100).")] = 20,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """The care signals sent in a community, newest first (moderators and above)."""
    chosen = enum_option(pb.CareSignalKind, "CARE_SIGNAL_KIND_", kind) if kind else 0
    with stub("members", pb_grpc.CareServiceStub) as client:
        reply = call(
            client.ListCareSignals,
            pb.ListCareSignalsRequest(
                community_id=community_id,
                kind=chosen,  # type: ignore[arg-type]
                page_size=limit,
            ),
            metadata(as_user),
        )
    if as_json:
        rows = [MessageToDict(s, preserving_proto_field_name=True) for s in reply.signals]
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"care signals ({len(reply.signals)})")
    for column in ("sent", "member", "kind", "local day", "days", "occasion"):
        table.add_column(column)
    for signal in reply.signals:
        occasion = ""
        if signal.occasion:
            occasion = events.GreetingOccasion.Name(signal.occasion)
            occasion = occasion.removeprefix("GREETING_OCCASION_").lower()
            if signal.holiday_name:
                occasion += f": {signal.holiday_name}"
        table.add_row(
            signal.create_time.ToDatetime().isoformat(timespec="minutes"),
            signal.user_id,
            pb.CareSignalKind.Name(signal.kind).removeprefix("CARE_SIGNAL_KIND_").lower(),
            signal.local_date,
            str(signal.days) if signal.days else "",
            occasion,
        )
    out.print(table)


def _holiday(text: str) -> pb.Holiday:
    day, separator, name = text.partition("=")
    if not separator:
        raise typer.BadParameter(f"--holiday {text!r}: expected MM-DD=Name or YYYY-MM-DD=Name")
    return pb.Holiday(date=day.strip(), name=name.strip())
