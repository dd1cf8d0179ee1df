"""Reading the rollups for the metrics of docs/metrics.md, for one community or for every
community (`community_id` None). Sums and groupings happen in SQL; what needs sets or
windows (WAU, MAU, cohorts) gets the rows and leaves the rest to services/analytics/domain.py."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Select, Table, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import domain
from services.analytics.domain import DateRange
from services.analytics.facts import DEEDS, QUESTION
from services.analytics.store.tables import (
    activities,
    community_stats,
    daily_counts,
    hourly_counts,
    member_days,
    member_firsts,
    member_states,
    mrr_days,
    post_days,
    posts,
    registrations,
    subscriptions,
)
from services.kit.database import utc

ACTIVE_SUBSCRIPTION = (2, 3)  # SUBSCRIPTION_STATE_ACTIVE, SUBSCRIPTION_STATE_PAST_DUE


def _total(measure: str) -> Any:
    return (
        select(func.sum(daily_counts.c.value))
        .where(
            daily_counts.c.community_id == bindparam("community_id"),
            daily_counts.c.measure == measure,
        )
        .scalar_subquery()
    )


# A community's card in one statement, built once: it is what a dashboard polls.
_STATS = select(
    community_stats.c.updated_at,
    community_stats.c.archived_at,
    select(func.count())
    .where(
        member_states.c.community_id == bindparam("community_id"),
        member_states.c.active.is_(True),
    )
    .scalar_subquery()
    .label("members"),
    _total("posts").label("posts"),
    _total("activities").label("activities"),
).where(community_stats.c.community_id == bindparam("community_id"))


class Metrics:
    def __init__(self, session: AsyncSession, community_id: str | None) -> None:
        self.session = session
        self.community_id = community_id

    def _in(self, table: Table, query: Select[Any]) -> Select[Any]:
        if self.community_id is None:
            return query
        return query.where(table.c.community_id == self.community_id)

    async def stats(self) -> domain.CommunityStats | None:
        assert self.community_id is not None
        row = (await self.session.execute(_STATS, {"community_id": self.community_id})).first()
        if row is None:
            return None
        return domain.CommunityStats(
            community_id=self.community_id,
            member_count=int(row.members or 0),
            post_count=int(row.posts or 0),
            activity_count=int(row.activities or 0),
            updated_at=utc(row.updated_at) if row.updated_at is not None else None,
            archived_at=utc(row.archived_at) if row.archived_at is not None else None,
        )

    async def measure_totals(
        self, measures: tuple[str, ...], *, before: date | None = None
    ) -> Counter[str]:
        query = select(daily_counts.c.measure, func.sum(daily_counts.c.value)).where(
            daily_counts.c.measure.in_(measures)
        )
        if before is not None:
            query = query.where(daily_counts.c.day < before)
        rows = await self.session.execute(
            self._in(daily_counts, query).group_by(daily_counts.c.measure)
        )
        return Counter({measure: int(total or 0) for measure, total in rows})

    async def daily(self, days: DateRange, measure: str) -> dict[date, int]:
        rows = await self.session.execute(
            self._in(
                daily_counts,
                select(daily_counts.c.day, func.sum(daily_counts.c.value))
                .where(
                    daily_counts.c.measure == measure,
                    daily_counts.c.day.between(days.start, days.end),
                )
                .group_by(daily_counts.c.day),
            )
        )
        return {day: int(total) for day, total in rows}

    async def growth(self, days: DateRange) -> list[domain.GrowthDay]:
        before = await self.measure_totals(("joined", "left"), before=days.start)
        return domain.growth(
            days,
            before["joined"] - before["left"],
            await self.daily(days, "joined"),
            await self.daily(days, "left"),
        )

    async def active_pairs(self, start: date, end: date) -> list[tuple[date, str]]:
        """(day, member) of every active day from `start` to `end`; across communities a
        member is the user id, so one person counts once."""
        rows = await self.session.execute(
            self._in(
                member_days,
                select(member_days.c.day, member_days.c.user_id)
                .where(member_days.c.day.between(start, end))
                .distinct(),
            )
        )
        return [(day, user) for day, user in rows]

    async def active_members(self, days: DateRange) -> tuple[list[domain.ActiveDay], int]:
        pairs = await self.active_pairs(days.start - timedelta(days=29), days.end)
        in_range = {user for day, user in pairs if day >= days.start}
        return domain.active_members(days, pairs), len(in_range)

    async def retention(self, days: DateRange) -> list[domain.Cohort]:
        joined = await self.session.execute(
            self._in(
                member_firsts,
                select(
                    member_firsts.c.community_id, member_firsts.c.user_id, member_firsts.c.joined_on
                ).where(member_firsts.c.joined_on.between(days.start, days.end)),
            )
        )
        cohort = [(f"{c}/{u}", day) for c, u, day in joined]
        active = await self.session.execute(
            self._in(
                member_days,
                select(member_days.c.community_id, member_days.c.user_id, member_days.c.day).where(
                    member_days.c.day.between(domain.week_of(days.start), days.end)
                ),
            )
        )
        return domain.retention(days, cohort, ((f"{c}/{u}", day) for c, u, day in active))

    async def participation(self, days: DateRange) -> list[tuple[str, int, int, int]]:
        """(activity id, kind, seated, attended) of the activities that start in the range
        and were not cancelled."""
        start, end = _day_bounds(days)
        seated = func.sum(func.cast(registrations.c.state.in_(domain.SEATED), _int()))
        attended = func.sum(func.cast(registrations.c.state == "attended", _int()))
        query = (
            select(activities.c.activity_id, activities.c.kind, seated, attended)
            .select_from(
                activities.outerjoin(
                    registrations,
                    and_(
                        registrations.c.community_id == activities.c.community_id,
                        registrations.c.activity_id == activities.c.activity_id,
                    ),
                )
            )
            .where(
                activities.c.cancelled.is_(False),
                activities.c.start_time >= start,
                activities.c.start_time < end,
            )
            .group_by(activities.c.activity_id, activities.c.kind)
            .order_by(activities.c.activity_id)
        )
        rows = await self.session.execute(self._in(activities, query))
        return [(a, int(k), int(s or 0), int(n or 0)) for a, k, s, n in rows]

    async def content(self, days: DateRange) -> dict[str, dict[Any, Counter[str]]]:
        """Per post kind and per topic: posts created in the range, and views, comments and
        reactions in the range (of posts created at any time)."""
        result: dict[str, dict[Any, Counter[str]]] = {"kind": {}, "topic": {}}
        start, end = _day_bounds(days)
        created = await self.session.execute(
            self._in(
                posts,
                select(posts.c.kind, posts.c.topic_id, func.count())
                .where(posts.c.created_at >= start, posts.c.created_at < end)
                .group_by(posts.c.kind, posts.c.topic_id),
            )
        )
        for kind, topic, count in created:
            result["kind"].setdefault(int(kind), Counter())["posts"] += int(count)
            result["topic"].setdefault(topic, Counter())["posts"] += int(count)
        kind = func.coalesce(posts.c.kind, 0)
        topic = func.coalesce(posts.c.topic_id, "")
        engaged = (
            select(
                kind,
                topic,
                func.sum(post_days.c.views),
                func.sum(post_days.c.comments),
                func.sum(post_days.c.reactions),
            )
            .select_from(
                post_days.outerjoin(
                    posts,
                    and_(
                        posts.c.community_id == post_days.c.community_id,
                        posts.c.post_id == post_days.c.post_id,
                    ),
                )
            )
            .where(post_days.c.day.between(days.start, days.end))
            .group_by(kind, topic)
        )
        for k, t, views, comments, reactions in await self.session.execute(
            self._in(post_days, engaged)
        ):
            for key, group in ((int(k), "kind"), (t, "topic")):
                figures = result[group].setdefault(key, Counter())
                figures["views"] += int(views or 0)
                figures["comments"] += int(comments or 0)
                figures["reactions"] += int(reactions or 0)
        return result

    async def contributors(self, days: DateRange, top: int) -> list[dict[str, Any]]:
        sums = [func.sum(member_days.c[deed]).label(deed) for deed in DEEDS]
        total = sum((member_days.c[deed] for deed in DEEDS[1:]), member_days.c[DEEDS[0]])
        contributions = func.sum(total).label("contributions")
        query = (
            select(
                member_days.c.user_id,
                contributions,
                *sums,
                func.count().label("active_days"),
            )
            .where(member_days.c.day.between(days.start, days.end))
            .group_by(member_days.c.user_id)
            .order_by(contributions.desc(), member_days.c.user_id)
            .limit(top)
        )
        rows = await self.session.execute(self._in(member_days, query))
        return [{key: value for key, value in row._mapping.items()} for row in rows]

    async def questions(self, days: DateRange) -> list[tuple[datetime, datetime | None]]:
        start, end = _day_bounds(days)
        rows = await self.session.execute(
            self._in(
                posts,
                select(posts.c.created_at, posts.c.first_answer_at).where(
                    posts.c.kind == QUESTION, posts.c.created_at >= start, posts.c.created_at < end
                ),
            )
        )
        return [
            (utc(asked), utc(answered) if answered is not None else None)
            for asked, answered in rows
        ]

    async def checkins(self, days: DateRange) -> tuple[dict[date, int], list[int]]:
        """Members who checked in per day, and each one's longest streak in the range."""
        per_day = await self.session.execute(
            self._in(
                member_days,
                select(member_days.c.day, func.count())
                .where(member_days.c.checkins > 0, member_days.c.day.between(days.start, days.end))
                .group_by(member_days.c.day),
            )
        )
        longest = await self.session.execute(
            self._in(
                member_days,
                select(func.max(member_days.c.streak))
                .where(member_days.c.checkins > 0, member_days.c.day.between(days.start, days.end))
                .group_by(member_days.c.community_id, member_days.c.user_id),
            )
        )
        return {day: int(n) for day, n in per_day}, [int(n) for (n,) in longest]

    async def funnel(self, days: DateRange) -> tuple[int, int, int, int]:
        def by_end(column: Any) -> Any:
            return func.sum(func.cast(and_(column.is_not(None), column <= days.end), _int()))

        row = (
            await self.session.execute(
                self._in(
                    member_firsts,
                    select(
                        func.count(),
                        by_end(member_firsts.c.first_post_on),
                        by_end(member_firsts.c.first_registration_on),
                        by_end(member_firsts.c.first_payment_on),
                    ).where(member_firsts.c.joined_on.between(days.start, days.end)),
                )
            )
        ).one()
        joined, posted, registered, paid = row
        return int(joined or 0), int(posted or 0), int(registered or 0), int(paid or 0)

    async def busy_hours(self, days: DateRange) -> dict[int, Counter[str]]:
        start, end = _day_bounds(days)
        rows = await self.session.execute(
            self._in(
                hourly_counts,
                select(hourly_counts.c.hour, hourly_counts.c.measure, hourly_counts.c.value).where(
                    hourly_counts.c.hour >= start, hourly_counts.c.hour < end
                ),
            )
        )
        hours: dict[int, Counter[str]] = {}
        for hour, measure, value in rows:
            hours.setdefault(utc(hour).hour, Counter())[measure] += int(value)
        return hours

    async def revenue(self, days: DateRange) -> dict[str, dict[str, int]]:
        """Per currency: MRR before and at the end of the range, movements by kind in it,
        churned subscriptions, and members paying now."""
        figures: dict[str, dict[str, int]] = {}

        def of(currency: str) -> dict[str, int]:
            return figures.setdefault(currency, Counter())

        mrr = await self.session.execute(
            self._in(
                mrr_days,
                select(
                    mrr_days.c.currency,
                    func.sum(mrr_days.c.amount_minor).filter(mrr_days.c.day < days.start),
                    func.sum(mrr_days.c.amount_minor),
                )
                .where(mrr_days.c.day <= days.end)
                .group_by(mrr_days.c.currency),
            )
        )
        for currency, before, at_end in mrr:
            of(currency)["mrr_start"] = int(before or 0)
            of(currency)["mrr_end"] = int(at_end or 0)
        moves = await self.session.execute(
            self._in(
                mrr_days,
                select(
                    mrr_days.c.currency,
                    mrr_days.c.kind,
                    func.sum(mrr_days.c.amount_minor),
                    func.sum(mrr_days.c.moves),
                )
                .where(mrr_days.c.day.between(days.start, days.end))
                .group_by(mrr_days.c.currency, mrr_days.c.kind),
            )
        )
        for currency, kind, amount, count in moves:
            of(currency)[f"kind_{kind}"] = int(amount or 0)
            of(currency)[f"moves_{kind}"] = int(count or 0)
        paying = await self.session.execute(
            self._in(
                subscriptions,
                select(
                    subscriptions.c.currency,
                    func.count(
                        func.distinct(subscriptions.c.community_id + "/" + subscriptions.c.user_id)
                    ),
                )
                .where(subscriptions.c.state.in_(ACTIVE_SUBSCRIPTION))
                .group_by(subscriptions.c.currency),
            )
        )
        for currency, members in paying:
            of(currency)["paying"] = int(members)
        return figures


def _int() -> Integer:
    return Integer()


def _day_bounds(days: DateRange) -> tuple[datetime, datetime]:
    start = utc(datetime.combine(days.start, datetime.min.time()))
    end = utc(datetime.combine(days.end + timedelta(days=1), datetime.min.time()))
    return start, end
