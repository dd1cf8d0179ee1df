"""`studyhall stats` (a community's main figures with sparklines) and `studyhall analytics
rebuild` (which runs the analytics process's own rebuild: the CLI imports no service)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer
from google.protobuf.json_format import MessageToDict
from rich.table import Table

from services.cli.common import AsJson, AsUser, call, metadata, out, stub
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc

analytics_app = typer.Typer(help="Analytics: figures rebuilt from the event history.")
BARS = "▁▂▃▄▅▆▇█"
MAIN = ["member_growth", "active_members", "funnel", "questions", "checkins"]


def sparkline(values: list[float]) -> str:
    """One bar per value, scaled between the least and the greatest."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low or 1
    return "".join(BARS[int((value - low) / span * (len(BARS) - 1))] for value in values)


def series(days: list[date], found: dict[str, float]) -> list[float]:
    """A value per day; the API leaves out days whose figures are all zero."""
    return [found.get(day.isoformat(), 0.0) for day in days]


def stats(
    community_id: str,
    days: Annotated[int, typer.Option(help="How many days up to today.")] = 30,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Main figures of a community over the last days, from analytics."""
    end = datetime.now(UTC).date()
    start = end - timedelta(days=days - 1)
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        current = call(
            client.GetCommunityStats,
            pb.GetCommunityStatsRequest(community_id=community_id),
            metadata(as_user),
        )
        found = call(
            client.GetMetrics,
            pb.GetMetricsRequest(
                community_id=community_id,
                start_date=start.isoformat(),
                end_date=end.isoformat(),
                metrics=MAIN,
            ),
            metadata(as_user),
        )
    if as_json:
        # The current figures at the top (as `stats --json` always printed them), the
        # range's metrics under "metrics".
        document = MessageToDict(
            current.stats,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        document["metrics"] = MessageToDict(found, preserving_proto_field_name=True)
        out.print_json(json.dumps(document))
        return
    calendar = [start + timedelta(days=n) for n in range(days)]
    growth = found.member_growth
    active = found.active_members
    members = series(calendar, {d.date: d.members for d in growth.days})
    dau = series(calendar, {d.date: d.dau for d in active.days})
    checked = series(calendar, {d.date: d.checked_in for d in found.checkins.days})
    table = Table(title=f"Community {community_id}: {start} to {end} (UTC)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("per day")
    table.add_row("members now", str(current.stats.member_count), sparkline(members))
    table.add_row(
        "joined / left", f"{growth.joined} / {growth.left}", sparkline([float(v) for v in members])
    )
    table.add_row("DAU (last day)", str(int(dau[-1]) if dau else 0), sparkline(dau))
    table.add_row("stickiness", f"{active.stickiness:.0%}", "")
    table.add_row("check-ins", str(int(sum(checked))), sparkline(checked))
    table.add_row("posts (all time)", str(current.stats.post_count), "")
    funnel = found.funnel
    table.add_row(
        "funnel joined→posted→registered→paid",
        f"{funnel.joined}→{funnel.posted}→{funnel.registered}→{funnel.paid}",
        "",
    )
    table.add_row("questions answered", f"{found.questions.answered_share:.0%}", "")
    out.print(table)


@analytics_app.command("rebuild")
def rebuild(
    into: Annotated[
        str | None, typer.Option(help="Database URL of the fresh store (default: SQLite).")
    ] = None,
    no_compare: Annotated[bool, typer.Option("--no-compare", help="Rebuild only.")] = False,
) -> None:
    """Rebuild every analytics projection from the JetStream history into a fresh store and
    compare it with the live one (the analytics settings of the environment apply)."""
    command = [sys.executable, "-m", "services.analytics", "rebuild"]
    if into:
        command += ["--into", into]
    if no_compare:
        command.append("--no-compare")
    raise typer.Exit(subprocess.call(command))
