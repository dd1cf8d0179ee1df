"""The gRPC handler of the weekly report: the week's figures gathered from the rollups,
surveys and the churn sweep, drawn as HTML with inline SVG charts or written as CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.domain import DateRange, one_day
from services.analytics.engagement.store import EngagementRepository
from services.analytics.reports.page import WeeklyReport, csv_of, html_of
from services.analytics.store.metrics import Metrics
from services.analytics.surveys import domain as surveys
from services.analytics.surveys.store import SurveyRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.validation import Violations
from studyhall.analytics.v1 import analytics_service_pb2 as pb

WEEKS = 8
TOP = 5
CONTRIBUTIONS = ("posts", "comments", "reactions")


class ReportsApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access

    async def GetWeeklyReport(
        self, request: pb.GetWeeklyReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWeeklyReportResponse:
        problems = Violations()
        problems.enum(
            "format",
            request.format,
            (pb.REPORT_FORMAT_HTML, pb.REPORT_FORMAT_CSV),
            "ReportFormat",
        )
        problems.raise_if_any()
        last_week = datetime.now(UTC).date() - timedelta(days=7)
        monday = surveys.week_of(one_day(request.date, "date", last_week))
        await self.access.require_role(
            request.community_id, current_identity(), Role.MODERATOR, "reading a weekly report"
        )
        async with self.database.read() as session:
            report = await gather(session, request.community_id, monday)
        if request.format == pb.REPORT_FORMAT_CSV:
            document, content_type = csv_of(report), "text/csv; charset=utf-8"
        else:
            document, content_type = html_of(report), "text/html; charset=utf-8"
        return pb.GetWeeklyReportResponse(
            document=document.encode(), content_type=content_type, week_start=monday.isoformat()
        )


async def gather(session: AsyncSession, community_id: str, monday: date) -> WeeklyReport:
    week = DateRange(monday, monday + timedelta(days=6))
    metrics = Metrics(session, community_id)
    report = WeeklyReport(community_id=community_id, week_start=monday)
    growth = await metrics.growth(week)
    report.members = growth[-1].members
    report.joined = sum(day.joined for day in growth)
    report.left = sum(day.left for day in growth)
    first = monday - timedelta(weeks=WEEKS - 1)
    by_day: dict[date, set[str]] = {}
    by_week: dict[date, set[str]] = {}
    for day, user in await metrics.active_pairs(first, week.end):
        by_day.setdefault(day, set()).add(user)
        by_week.setdefault(surveys.week_of(day), set()).add(user)
    report.daily_active = [len(by_day.get(day, ())) for day in week.days]
    report.active = len(by_week.get(monday, ()))
    report.weekly_active = [
        (start, len(by_week.get(start, ())))
        for start in (first + timedelta(weeks=n) for n in range(WEEKS))
    ]
    counted = {
        measure: await metrics.daily(week, measure) for measure in (*CONTRIBUTIONS, "checkins")
    }
    report.daily_contributions = [
        sum(counted[m].get(day, 0) for m in CONTRIBUTIONS) for day in week.days
    ]
    report.posts, report.comments, report.reactions, report.checkins = (
        sum(counted[m].values()) for m in (*CONTRIBUTIONS, "checkins")
    )
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(week.end, time.max, tzinfo=UTC)
    answers = SurveyRepository(session)
    trend = surveys.trend(
        await answers.answers_between(community_id, start, end),
        await answers.feedback_between(community_id, start, end),
    )
    report.satisfaction = [(w.start, w.satisfaction()) for w in trend]
    report.at_risk = await EngagementRepository(session).count_at_risk(community_id)
    report.top = [
        (row["user_id"], int(row["contributions"] or 0))
        for row in await metrics.contributors(week, TOP)
    ]
    return report
