"""`studyhall stats` (a community's main figures with sparklines), `studyhall analytics
rebuild` (which runs the analytics process's own rebuild: the CLI imports no service), and
surveys, satisfaction, engagement, churn risk, benchmarks and the weekly report."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

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
    as_json: AsJson = False,
) -> None:
    """Rebuild every analytics projection from the JetStream history into a fresh store and
    compare it with the live one (the analytics settings of the environment apply)."""
    command = [sys.executable, "-m", "services.analytics", "rebuild"]
    if into:
        command += ["--into", into]
    if no_compare:
        command.append("--no-compare")
    if as_json:
        command.append("--json")
    raise typer.Exit(subprocess.call(command))


# -- Analytics II: surveys, engagement, benchmarks, reports --------------------------------

surveys_app = typer.Typer(help="Surveys admins send to members, and their results.")
analytics_app.add_typer(surveys_app, name="surveys")
KINDS = {
    "rating": pb.QUESTION_KIND_RATING,
    "single": pb.QUESTION_KIND_SINGLE_CHOICE,
    "multiple": pb.QUESTION_KIND_MULTIPLE_CHOICE,
    "text": pb.QUESTION_KIND_FREE_TEXT,
    "nps": pb.QUESTION_KIND_NPS,
}


def _print(message: Any, as_json: bool, lines: list[str]) -> None:
    """The whole answer as JSON, or a few lines for a person."""
    if as_json:
        out.print_json(json.dumps(MessageToDict(message, preserving_proto_field_name=True)))
        return
    for line in lines:
        out.print(line, highlight=False)


def _question(text: str) -> pb.SurveyQuestion:
    """KEY:KIND:PROMPT[:CHOICE|CHOICE...][:required]."""
    parts = text.split(":")
    if len(parts) < 3 or parts[1] not in KINDS:
        raise typer.BadParameter(
            f"{text!r}: write KEY:KIND:PROMPT[:CHOICE|CHOICE][:required], KIND one of "
            + ", ".join(KINDS)
        )
    required = parts[-1] == "required"
    rest = parts[3:-1] if required else parts[3:]
    choices = rest[0].split("|") if rest and rest[0] else []
    return pb.SurveyQuestion(
        key=parts[0], kind=KINDS[parts[1]], prompt=parts[2], choices=choices, required=required
    )


def _answer(text: str) -> pb.SurveyAnswer:
    """KEY=SCORE, KEY=CHOICE|CHOICE or KEY=text words (a number answers a scored question)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise typer.BadParameter(f"{text!r}: write KEY=VALUE")
    if value.lstrip("-").isdigit():
        return pb.SurveyAnswer(key=key, score=int(value))
    if value.startswith("text:"):
        return pb.SurveyAnswer(key=key, text=value[len("text:") :])
    return pb.SurveyAnswer(key=key, choices=value.split("|"))


@surveys_app.command("create")
def survey_create(
    community_id: str,
    title: Annotated[str, typer.Option(help="The survey's title.")],
    question: Annotated[
        list[str],
        typer.Option(
            "--question",
            help="KEY:KIND:PROMPT[:CHOICE|CHOICE][:required]; KIND: rating, single, "
            "multiple, text or nps. Repeat for each question.",
        ),
    ],
    segment: Annotated[str, typer.Option(help="Send it to this segment only.")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Create and open a survey, sent to every member or to a segment."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.CreateSurvey,
            pb.CreateSurveyRequest(
                request_id=f"cli-{uuid.uuid4().hex}",
                community_id=community_id,
                title=title,
                questions=[_question(q) for q in question],
                segment_id=segment,
            ),
            metadata(as_user),
        )
    _print(reply, as_json, [f"survey {reply.survey.id} is open"])


@surveys_app.command("list")
def survey_list(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """The community's surveys, newest first."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.ListSurveys,
            pb.ListSurveysRequest(community_id=community_id, page_size=100),
            metadata(as_user),
        )
    _print(
        reply,
        as_json,
        [
            f"{s.id}  {'closed' if s.HasField('close_time') else 'open  '}  "
            f"{s.answer_count} answers  {s.title}"
            for s in reply.surveys
        ],
    )


@surveys_app.command("answer")
def survey_answer(
    community_id: str,
    survey_id: str,
    answer: Annotated[
        list[str],
        typer.Option("--answer", help="KEY=SCORE, KEY=CHOICE|CHOICE or KEY=text:WORDS; repeat."),
    ],
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Answer a survey (once)."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.AnswerSurvey,
            pb.AnswerSurveyRequest(
                request_id=f"cli-{uuid.uuid4().hex}",
                community_id=community_id,
                survey_id=survey_id,
                answers=[_answer(a) for a in answer],
            ),
            metadata(as_user),
        )
    _print(reply, as_json, ["answered"])


@surveys_app.command("close")
def survey_close(
    community_id: str, survey_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Close a survey: no more answers."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.CloseSurvey,
            pb.CloseSurveyRequest(
                request_id=f"cli-{uuid.uuid4().hex}",
                community_id=community_id,
                survey_id=survey_id,
            ),
            metadata(as_user),
        )
    _print(reply, as_json, [f"closed with {reply.survey.answer_count} answers"])


@surveys_app.command("results")
def survey_results(
    community_id: str,
    survey_id: str,
    segment: Annotated[str, typer.Option(help="Only this segment's members.")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A survey's results per question, overall or of a segment."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.GetSurveyResults,
            pb.GetSurveyResultsRequest(
                community_id=community_id, survey_id=survey_id, segment_id=segment
            ),
            metadata(as_user),
        )
    lines = [f"{reply.respondents} respondents"]
    for q in reply.questions:
        figures = f"mean {q.mean_score:g}" if q.score_counts else ""
        if q.kind == pb.QUESTION_KIND_NPS:
            figures += f", NPS {q.nps:g}"
        figures += "".join(f", {c.label}: {c.count}" for c in q.choices)
        lines.append(f"{q.key}: {q.answered} answered {figures}".rstrip())
    _print(reply, as_json, lines)


@analytics_app.command("satisfaction")
def satisfaction(
    community_id: str,
    weeks: Annotated[int, typer.Option(help="How many weeks up to today.")] = 12,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Satisfaction per week: survey ratings, NPS and activities' feedback together."""
    end = datetime.now(UTC).date()
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.GetSatisfactionTrend,
            pb.GetSatisfactionTrendRequest(
                community_id=community_id,
                start_date=(end - timedelta(weeks=weeks)).isoformat(),
                end_date=end.isoformat(),
            ),
            metadata(as_user),
        )
    lines = [f"{w.week_start}  {w.satisfaction:5.1f}" for w in reply.weeks]
    lines.append(sparkline([w.satisfaction for w in reply.weeks]))
    _print(reply, as_json, lines)


@analytics_app.command("engagement")
def engagement(
    community_id: str,
    top: Annotated[int, typer.Option(help="How many members.")] = 20,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Members' engagement scores today, highest first."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.ListEngagementScores,
            pb.ListEngagementScoresRequest(community_id=community_id, top=top),
            metadata(as_user),
        )
    _print(
        reply,
        as_json,
        [f"{s.score:8.2f} (was {s.previous_score:.2f})  {s.user_id}" for s in reply.scores],
    )


@analytics_app.command("churn")
def churn(
    community_id: str,
    top: Annotated[int, typer.Option(help="How many members.")] = 20,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Members at churn risk, as the nightly sweep judged them."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.ListChurnRisks,
            pb.ListChurnRisksRequest(community_id=community_id, top=top),
            metadata(as_user),
        )
    _print(
        reply,
        as_json,
        [
            f"{pb.ChurnRisk.Name(m.risk).removeprefix('CHURN_RISK_').lower():8} "
            f"{m.score:.2f} (was {m.previous_score:.2f})  {m.user_id}"
            for m in reply.members
        ],
    )


@analytics_app.command("benchmarks")
def benchmarks(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """The community's figures as percentiles among the communities of its topic."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.GetBenchmarks,
            pb.GetBenchmarksRequest(community_id=community_id),
            metadata(as_user),
        )
    lines = [f"topic {reply.topic!r}: {reply.peers} peers"]
    lines += [f"{b.metric}: {b.value:g}, p{b.percentile}" for b in reply.benchmarks]
    if not reply.benchmarks:
        lines.append("fewer than 10 peers: no benchmark")
    _print(reply, as_json, lines)


@analytics_app.command("report")
def report(
    community_id: str,
    output: Annotated[Path, typer.Option("--out", help="Where to write the report.")],
    week: Annotated[str, typer.Option(help="Any day of the week (default: last week).")] = "",
    csv: Annotated[bool, typer.Option("--csv", help="The figures as CSV, not HTML.")] = False,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Write a community's weekly report: an HTML page with its charts, or CSV."""
    with stub("analytics", pb_grpc.AnalyticsServiceStub) as client:
        reply = call(
            client.GetWeeklyReport,
            pb.GetWeeklyReportRequest(
                community_id=community_id,
                date=week,
                format=pb.REPORT_FORMAT_CSV if csv else pb.REPORT_FORMAT_HTML,
            ),
            metadata(as_user),
        )
    output.write_bytes(reply.document)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "path": str(output),
                    "week_start": reply.week_start,
                    "content_type": reply.content_type,
                    "bytes": len(reply.document),
                }
            )
        )
        return
    out.print(f"wrote the report of the week of {reply.week_start} to {output}", highlight=False)
