"""gRPC edge of the analytics service: decode, validate, authorize, call, encode."""

from __future__ import annotations

from datetime import timedelta

import grpc
from google.protobuf.duration_pb2 import Duration

from services.analytics import domain
from services.analytics.store.metrics import Metrics
from services.kit.access import Access, Role
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import PermissionDenied
from services.kit.timestamps import timestamp_or_none
from studyhall.analytics.v1 import analytics_service_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AnalyticsService"].full_name
# MrrMoveKind numbers (studyhall.billing.v1) and the response field each fills.
_MOVES = {1: "new_minor", 2: "expansion_minor", 3: "contraction_minor", 4: "churn_minor"}
_MOVES[5] = "reactivation_minor"
_CHURN = 4


class AnalyticsApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access

    async def GetCommunityStats(
        self, request: pb.GetCommunityStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCommunityStatsResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading a community's figures"
        )
        community_id = request.community_id
        async with self.database.read() as session:
            stats = await Metrics(session, community_id).stats()
        return pb.GetCommunityStatsResponse(
            stats=_stats(stats or domain.CommunityStats(community_id=community_id))
        )

    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMetricsResponse:
        days = domain.date_range(request.start_date, request.end_date)
        wanted = domain.chosen_metrics(request.metrics)
        await self._authorize(request.community_id, Role.MODERATOR, "reading a community's figures")
        reply = pb.GetMetricsResponse(community_id=request.community_id)
        async with self.database.read() as session:
            metrics = Metrics(session, request.community_id or None)
            for name in wanted:
                await _FILL[name](metrics, days, request, reply)
        return reply

    async def GetRevenue(
        self, request: pb.GetRevenueRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRevenueResponse:
        days = domain.date_range(request.start_date, request.end_date)
        await self._authorize(request.community_id, Role.ADMIN, "reading a community's revenue")
        async with self.database.read() as session:
            figures = await Metrics(session, request.community_id or None).revenue(days)
        reply = pb.GetRevenueResponse(community_id=request.community_id)
        for currency in sorted(figures):
            f = figures[currency]
            row = reply.currencies.add(
                currency=currency,
                mrr_start_minor=f.get("mrr_start", 0),
                mrr_end_minor=f.get("mrr_end", 0),
                paying_members=f.get("paying", 0),
                churned_subscriptions=f.get(f"moves_{_CHURN}", 0),
            )
            for kind, name in _MOVES.items():
                setattr(row, name, f.get(f"kind_{kind}", 0))
            row.arpu_minor = row.mrr_end_minor // row.paying_members if row.paying_members else 0
            row.revenue_churn_rate = domain.ratio(-row.churn_minor, row.mrr_start_minor)
        return reply

    async def _authorize(self, community_id: str, role: Role, what: str) -> Identity:
        """`role` in the community; every community (no id) is for platform operators."""
        caller = current_identity()
        if not community_id:
            if not caller.operator:
                raise PermissionDenied(
                    f"{what} across every community is for platform operators; name a community_id"
                )
            return caller
        await self.access.require_role(community_id, caller, role, what)
        return caller


# -- one filler per metric ------------------------------------------------------------------


async def _growth(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    series = await m.growth(days)
    out = reply.member_growth
    for day in series:
        if not (day.joined or day.left or day.members):
            continue
        out.days.add(
            date=day.day.isoformat(),
            joined=day.joined,
            left=day.left,
            net=day.joined - day.left,
            members=day.members,
        )
    out.joined = sum(day.joined for day in series)
    out.left = sum(day.left for day in series)
    out.net = out.joined - out.left


async def _active(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    series, in_range = await m.active_members(days)
    out = reply.active_members
    for day in series:
        if not day.mau:
            continue
        out.days.add(
            date=day.day.isoformat(),
            dau=day.dau,
            wau=day.wau,
            mau=day.mau,
            stickiness=domain.ratio(day.dau, day.mau),
        )
    out.stickiness = domain.ratio(sum(d.dau for d in series), sum(d.mau for d in series))
    out.active_in_range = in_range


async def _retention(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    for cohort in await m.retention(days):
        size = len(cohort.members)
        reply.retention.cohorts.add(
            week_start=cohort.week_start.isoformat(),
            size=size,
            active=cohort.active,
            rate=[domain.ratio(n, size) for n in cohort.active],
        )


async def _participation(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    kinds: dict[int, list[int]] = {}
    for activity_id, kind, seated, attended in await m.participation(days):
        reply.participation.activities.add(
            activity_id=activity_id,
            kind=kind,
            registered=seated,
            attended=attended,
            rate=domain.ratio(attended, seated),
        )
        totals = kinds.setdefault(kind, [0, 0, 0])
        totals[0] += 1
        totals[1] += seated
        totals[2] += attended
    for kind in sorted(kinds):
        count, seated, attended = kinds[kind]
        reply.participation.kinds.add(
            kind=kind,
            activities=count,
            registered=seated,
            attended=attended,
            rate=domain.ratio(attended, seated),
        )


def _engagement(figures: dict[str, int]) -> pb.Engagement:
    views, comments, reactions = figures["views"], figures["comments"], figures["reactions"]
    return pb.Engagement(
        posts=figures["posts"],
        views=views,
        comments=comments,
        reactions=reactions,
        engagement_rate=domain.ratio(comments + reactions, views),
    )


async def _content(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    grouped = await m.content(days)
    for kind in sorted(grouped["kind"]):
        reply.content.kinds.add(kind=kind, figures=_engagement(grouped["kind"][kind]))
    for topic in sorted(grouped["topic"]):
        reply.content.topics.add(topic_id=topic, figures=_engagement(grouped["topic"][topic]))


async def _contributors(
    m: Metrics, days: domain.DateRange, request: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    for row in await m.contributors(days, request.top or domain.DEFAULT_TOP):
        reply.top_contributors.contributors.add(**{k: v for k, v in row.items()})


async def _questions(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    asked = await m.questions(days)
    seconds = domain.answer_times(asked)
    out = reply.questions
    out.asked = len(asked)
    out.answered = len(seconds)
    out.answered_share = domain.ratio(len(seconds), len(asked))
    if seconds:
        out.median_time_to_first_answer.CopyFrom(_duration(domain.median_of(seconds)))
        out.mean_time_to_first_answer.CopyFrom(_duration(sum(seconds) / len(seconds)))


async def _checkins(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    checked_in, longest = await m.checkins(days)
    growth = await m.growth(days)
    out = reply.checkins
    for day in growth:
        n = checked_in.get(day.day, 0)
        if not (n or day.members):
            continue
        out.days.add(
            date=day.day.isoformat(),
            checked_in=n,
            members=day.members,
            rate=domain.ratio(n, day.members),
        )
    for least, most, members in domain.streak_buckets(longest):
        if members:
            out.streaks.add(min_days=least, max_days=most, members=members)


async def _funnel(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    joined, posted, registered, paid = await m.funnel(days)
    reply.funnel.joined, reply.funnel.posted = joined, posted
    reply.funnel.registered, reply.funnel.paid = registered, paid


async def _busy_hours(
    m: Metrics, days: domain.DateRange, _: pb.GetMetricsRequest, reply: pb.GetMetricsResponse
) -> None:
    hours = await m.busy_hours(days)
    for hour in sorted(hours):
        reply.busy_hours.hours.add(hour=hour, counts=dict(hours[hour]))


_FILL = {
    "member_growth": _growth,
    "active_members": _active,
    "retention": _retention,
    "participation": _participation,
    "content": _content,
    "top_contributors": _contributors,
    "questions": _questions,
    "checkins": _checkins,
    "funnel": _funnel,
    "busy_hours": _busy_hours,
}
assert set(_FILL) == set(domain.METRICS)


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(seconds=round(seconds, 6)))
    return duration


def _stats(stats: domain.CommunityStats) -> pb.CommunityStats:
    return pb.CommunityStats(
        community_id=stats.community_id,
        member_count=stats.member_count,
        post_count=stats.post_count,
        activity_count=stats.activity_count,
        product_count=stats.product_count,
        update_time=timestamp_or_none(stats.updated_at),
        archive_time=timestamp_or_none(stats.archived_at),
    )
