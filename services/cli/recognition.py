"""`studyhall points`, `studyhall levels`, `studyhall leaderboard`, `studyhall standing`:
recognition in a community."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import typer
from google.protobuf.json_format import MessageToDict
from rich.table import Table

from services.cli.common import AsJson, AsUser, RequestId, call, metadata, out, show, stub
from studyhall.members.v1 import recognition_service_pb2 as pb
from studyhall.members.v1 import recognition_service_pb2_grpc as pb_grpc

# Registered without a name: its groups and commands sit at the top of `studyhall`.
recognition_app = typer.Typer(no_args_is_help=True)
points_app = typer.Typer(help="Points: award them, read a ledger.", no_args_is_help=True)
levels_app = typer.Typer(help="Levels and the privileges they unlock.", no_args_is_help=True)
recognition_app.add_typer(points_app, name="points")
recognition_app.add_typer(levels_app, name="levels")

WINDOWS = {
    "7d": pb.LEADERBOARD_WINDOW_LAST_7_DAYS,
    "30d": pb.LEADERBOARD_WINDOW_LAST_30_DAYS,
    "all": pb.LEADERBOARD_WINDOW_ALL_TIME,
}


@points_app.command("award")
def points_award(
    community_id: str,
    user_id: str,
    amount: Annotated[int, typer.Argument(help="Moderators: -1000..1000; members: 1 (kudos).")],
    reason: Annotated[str, typer.Option(help="Why; required from moderators.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Award points (moderators) or give a member kudos (+1 once a day)."""
    with stub("members", pb_grpc.RecognitionServiceStub) as client:
        reply = call(
            client.AwardPoints,
            pb.AwardPointsRequest(
                community_id=community_id,
                user_id=user_id,
                amount=amount,
                reason=reason,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    show(reply.standing, as_json, "standing")


@points_app.command("ledger")
def points_ledger(
    community_id: str,
    user_id: Annotated[str, typer.Option("--user", help="Whose ledger (moderators).")] = "",
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 20,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A member's points ledger, newest first (your own by default)."""
    with stub("members", pb_grpc.RecognitionServiceStub) as client:
        reply = call(
            client.ListLedger,
            pb.ListLedgerRequest(community_id=community_id, user_id=user_id, page_size=limit),
            metadata(as_user),
        )
    if as_json:
        rows = [MessageToDict(e, preserving_proto_field_name=True) for e in reply.entries]
        out.print_json(json.dumps(rows))
        return
    table = Table(title="ledger")
    for column in ("id", "day", "amount", "reason", "by", "note"):
        table.add_column(column)
    for entry in reply.entries:
        table.add_row(
            str(entry.id),
            entry.local_date,
            f"{entry.amount:+d}",
            entry.reason,
            entry.awarded_by_user_id,
            entry.note,
        )
    out.print(table)


@recognition_app.command("leaderboard")
def leaderboard(
    community_id: str,
    window: Annotated[str, typer.Option(help="7d, 30d or all.")] = "7d",
    limit: Annotated[int, typer.Option(help="How many members (at most 100).")] = 10,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """The community's top members by points over a window, in its time zone."""
    if window not in WINDOWS:
        raise typer.BadParameter(f"{window!r} is not one of {', '.join(WINDOWS)}")
    with stub("members", pb_grpc.RecognitionServiceStub) as client:
        reply = call(
            client.GetLeaderboard,
            pb.GetLeaderboardRequest(
                community_id=community_id, window=WINDOWS[window], page_size=limit
            ),
            metadata(as_user),
        )
    if as_json:
        rows = [MessageToDict(e, preserving_proto_field_name=True) for e in reply.entries]
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"leaderboard ({window})")
    for column in ("rank", "member", "points"):
        table.add_column(column)
    for entry in reply.entries:
        table.add_row(str(entry.rank), entry.user_id, str(entry.points))
    out.print(table)


@recognition_app.command("standing")
def standing(
    community_id: str,
    user_id: Annotated[str, typer.Option("--user", help="Whose standing; yours by default.")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Points, level, next threshold, privileges and badges of a member."""
    with stub("members", pb_grpc.RecognitionServiceStub) as client:
        reply = call(
            client.GetStanding,
            pb.GetStandingRequest(community_id=community_id, user_id=user_id),
            metadata(as_user),
        )
    show(reply.standing, as_json, "standing")


@levels_app.command("show")
def levels_show(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """The community's levels and what each unlocks."""
    with stub("members", pb_grpc.RecognitionServiceStub) as client:
        reply = call(
            client.GetLevels, pb.GetLevelsRequest(community_id=community_id), metadata(as_user)
        )
    if as_json:
        out.print_json(json.dumps(MessageToDict(reply, preserving_proto_field_name=True)))
        return
    table = Table(title="levels")
    for column in ("level", "from points", "unlocks"):
        table.add_column(column)
    for level in reply.levels:
        table.add_row(str(level.level), str(level.min_points), ", ".join(level.privileges))
    out.print(table)


@levels_app.command("set")
def levels_set(
    community_id: str,
    level: Annotated[
        list[str],
        typer.Argument(
            help="One per level, in order: POINTS or POINTS:privilege,privilege "
            "(e.g. 0 5:give_kudos 20:post_links)."
        ),
    ],
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Replace the community's levels (admins)."""
    levels = []
    for spec in level:
        points, _, privileges = spec.partition(":")
        if not points.lstrip("-").isdigit():
            raise typer.BadParameter(f"{spec!r}: expected POINTS or POINTS:privilege,...")
        levels.append(
            pb.Level(min_points=int(points), privileges=[p for p in privileges.split(",") if p])
        )
    with stub("members", pb_grpc.RecognitionServiceStub) as client:
        reply = call(
            client.SetLevels,
            pb.SetLevelsRequest(
                community_id=community_id,
                levels=levels,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "levels")
        return
    for each in reply.levels:
        typer.echo(f"level {each.level}: {each.min_points}+ {', '.join(each.privileges)}")
