"""Every metric of docs/metrics.md through the API, against figures worked out by hand from
the facts the test publishes on the real bus (nothing writes analytics' tables but its
consumers). Some facts arrive out of order on purpose: the figures must not care.

The story, in community "hall", days D0 (Monday 2030-01-07) to D9, all times UTC:
- D0 08:00 olga (owner), mia (moderator) and ann join; D1 bob; D2 dan; D3 dan leaves;
  D8 cat joins.
- ann writes an article in topic T1 (D0 09:00) and comments on it (D1); bob asks a question
  (D1 10:00); cat answers it (D8), then ann's earlier answer (D1 12:00) arrives.
- bob and cat view the article on D1; cat reacts to it on D8.
- bob checks in on D1 (streak 1) and D2 (streak 2), ann on D2 (streak 5).
- lecture L (starts D5): ann registers (D1) and attends (D5; the attendance arrives first),
  bob registers (D2) and does not show, cat is waitlisted (D8) then promoted. A meetup that
  was cancelled has a registration that must not count.
- bob pays (D3, USD 10.00 a month: MRR +1000); ann's EUR 5.00 subscription from before the
  range churns on D6.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from services.analytics import rebuild as rebuild_module
from services.analytics.app import SPEC, subscriptions
from services.analytics.rebuild import rebuild
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.tables import member_days
from services.cli.analytics import sparkline
from services.kit.database import Database
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc
from studyhall.billing.v1 import billing_events_pb2 as billing
from studyhall.billing.v1 import billing_service_pb2 as billing_pb
from studyhall.content.v1 import content_events_pb2 as content
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.events.v1 import activities_events_pb2 as activities
from studyhall.events.v1 import activities_service_pb2 as activities_pb
from studyhall.members.v1 import checkins_events_pb2 as checkins
from studyhall.members.v1 import members_events_pb2 as members
from studyhall.members.v1 import members_service_pb2 as members_pb
from tests.support.bus import Bus, bus, envelope_of
from tests.support.catalogue import STORES, new_database
from tests.support.errors import field_violations
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service

STREAMS = ("members", "content", "events", "billing")
D0 = datetime(2030, 1, 7, tzinfo=UTC)


def day(n: int, hour: int = 8) -> datetime:
    return D0 + timedelta(days=n, hours=hour - 0)


def at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


@dataclass
class World:
    analytics: RunningService
    stub: pb_grpc.AnalyticsServiceStub
    bus: Bus


@pytest.fixture(autouse=True)
async def fresh_jetstream() -> None:
    """The module's one service keeps its durable consumers: the streams stay (each test
    works in communities of its own)."""


@pytest.fixture(scope="module", params=STORES)
async def world(
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp(f"analytics-{request.param}")
    async with bus(nats_url, STREAMS) as connection:
        for service in STREAMS:  # whatever earlier modules left
            await connection.js.purge_stream(f"STUDYHALL_{service.upper()}")
        with new_database(str(request.param), request, directory) as database_url:
            async with running_service(
                SPEC,
                AnalyticsSettings,
                database_url=database_url,
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=directory,
            ) as running:
                yield World(running, pb_grpc.AnalyticsServiceStub(running.channel), connection)
        for service in STREAMS:
            await connection.js.delete_stream(f"STUDYHALL_{service.upper()}")


async def community(world: World, when: datetime = D0, **people: int) -> str:
    """A new community, created by olga at 08:00 of `when`'s day, with `people` joined
    then in their roles."""
    community_id = str(uuid.uuid4())
    when = when.replace(hour=8)
    await world.bus.publish(
        members.CommunityCreated(
            community_id=community_id,
            owner_user_id="olga",
            visibility=members_pb.VISIBILITY_PUBLIC,
            version=1,
            create_time=at(when),
        )
    )
    for person, role in {"olga": members_pb.ROLE_OWNER, **people}.items():
        await join(world, community_id, person, when, role)
    return community_id


async def join(
    world: World, community_id: str, user: str, when: datetime, role: int = members_pb.ROLE_MEMBER
) -> None:
    await world.bus.publish(
        members.MemberJoined(
            community_id=community_id,
            user_id=user,
            role=role,  # type: ignore[arg-type]
            version=1,
            join_time=at(when),
        )
    )


async def hall(world: World) -> str:
    """The story of the module docstring, published; the community's id."""
    c = await community(world, mia=members_pb.ROLE_MODERATOR, ann=members_pb.ROLE_MEMBER)
    publish = world.bus.publish
    await join(world, c, "bob", day(1))
    await join(world, c, "dan", day(2))
    await publish(
        members.MemberLeft(community_id=c, user_id="dan", version=2, leave_time=at(day(3)))
    )
    await join(world, c, "cat", day(8))

    article, question = str(uuid.uuid4()), str(uuid.uuid4())
    await publish(
        content.PostCreated(
            community_id=c,
            post_id=article,
            author_user_id="ann",
            kind=content_pb.POST_KIND_ARTICLE,
            topic_id="t1",
            version=1,
            create_time=at(day(0, 9)),
        )
    )
    await publish(
        content.CommentAdded(
            community_id=c,
            comment_id=str(uuid.uuid4()),
            post_id=article,
            author_user_id="ann",
            version=1,
            create_time=at(day(1, 9)),
        )
    )
    for viewer in ("bob", "cat"):
        await publish(
            content.ContentViewed(
                community_id=c, post_id=article, user_id=viewer, view_time=at(day(1, 11))
            )
        )
    await publish(
        content.ReactionAdded(
            community_id=c,
            post_id=article,
            user_id="cat",
            kind=content_pb.REACTION_KIND_LIKE,
            react_time=at(day(8, 9)),
        )
    )
    # The later answer arrives first, and both before the question.
    for author, when in (("cat", day(8, 10)), ("ann", day(1, 12))):
        await publish(
            content.CommentAdded(
                community_id=c,
                comment_id=str(uuid.uuid4()),
                post_id=question,
                author_user_id=author,
                is_answer=True,
                version=1,
                create_time=at(when),
            )
        )
    await publish(
        content.PostCreated(
            community_id=c,
            post_id=question,
            author_user_id="bob",
            kind=content_pb.POST_KIND_QUESTION,
            version=1,
            create_time=at(day(1, 10)),
        )
    )
    for user, n, streak in (("bob", 1, 1), ("bob", 2, 2), ("ann", 2, 5)):
        await publish(
            checkins.CheckedIn(
                community_id=c,
                user_id=user,
                checkin_id=str(uuid.uuid4()),
                local_date=day(n).date().isoformat(),
                streak_days=streak,
                checkin_time=at(day(n, 7)),
            )
        )

    lecture, meetup = str(uuid.uuid4()), str(uuid.uuid4())
    lecture_kind = activities_pb.ACTIVITY_KIND_ONLINE_LECTURE
    await publish(
        activities.ActivityCreated(
            activity_id=lecture,
            community_id=c,
            host_user_id="mia",
            kind=lecture_kind,
            start_time=at(day(5, 18)),
            version=1,
            create_time=at(day(0, 10)),
        )
    )
    registration = {name: str(uuid.uuid4()) for name in ("ann", "bob", "cat", "gone")}
    await publish(
        activities.AttendanceRecorded(
            registration_id=registration["ann"],
            activity_id=lecture,
            community_id=c,
            user_id="ann",
            version=2,
            record_time=at(day(5, 19)),
        )
    )
    await publish(
        activities.Registered(
            registration_id=registration["ann"],
            activity_id=lecture,
            community_id=c,
            user_id="ann",
            version=1,
            register_time=at(day(1, 13)),
        )
    )
    await publish(
        activities.Registered(
            registration_id=registration["bob"],
            activity_id=lecture,
            community_id=c,
            user_id="bob",
            version=1,
            register_time=at(day(2, 13)),
        )
    )
    await publish(
        activities.NoShowRecorded(
            registration_id=registration["bob"],
            activity_id=lecture,
            community_id=c,
            user_id="bob",
            version=2,
            record_time=at(day(5, 20)),
        )
    )
    await publish(
        activities.Waitlisted(
            registration_id=registration["cat"],
            activity_id=lecture,
            community_id=c,
            user_id="cat",
            position=1,
            version=1,
            waitlist_time=at(day(8, 11)),
        )
    )
    await publish(
        activities.Promoted(
            registration_id=registration["cat"],
            activity_id=lecture,
            community_id=c,
            user_id="cat",
            version=2,
            promote_time=at(day(8, 12)),
        )
    )
    meetup_kind = activities_pb.ACTIVITY_KIND_OFFLINE_MEETUP
    await publish(
        activities.ActivityCreated(
            activity_id=meetup,
            community_id=c,
            kind=meetup_kind,
            start_time=at(day(6, 18)),
            version=1,
            create_time=at(day(0, 11)),
        )
    )
    await publish(
        activities.ActivityCancelled(
            activity_id=meetup,
            community_id=c,
            kind=meetup_kind,
            start_time=at(day(6, 18)),
            version=2,
            cancel_time=at(day(1, 11)),
        )
    )
    await publish(
        activities.Registered(
            registration_id=registration["gone"],
            activity_id=meetup,
            community_id=c,
            user_id="ann",
            version=1,
            register_time=at(day(0, 12)),
        )
    )

    usd = billing_pb.Money(amount_minor=1000, currency="USD")
    eur = billing_pb.Money(amount_minor=500, currency="EUR")
    await publish(
        billing.CheckoutCompleted(
            checkout_id=str(uuid.uuid4()),
            community_id=c,
            user_id="bob",
            amount=usd,
            complete_time=at(day(3)),
        )
    )
    bobs, anns = str(uuid.uuid4()), str(uuid.uuid4())
    await publish(
        billing.SubscriptionChanged(
            subscription_id=bobs,
            community_id=c,
            user_id="bob",
            state=billing.SUBSCRIPTION_STATE_ACTIVE,
            price=usd,
            version=1,
            change_time=at(day(3)),
        )
    )
    await publish(
        billing.MrrMoved(
            community_id=c,
            kind=billing.MRR_MOVE_KIND_NEW,
            amount_minor=1000,
            currency="USD",
            subscription_id=bobs,
            move_time=at(day(3)),
        )
    )
    # ann's subscription: cancelled (version 2) before its start (version 1) arrives.
    for state, version in (
        (billing.SUBSCRIPTION_STATE_CANCELED, 2),
        (billing.SUBSCRIPTION_STATE_ACTIVE, 1),
    ):
        await publish(
            billing.SubscriptionChanged(
                subscription_id=anns,
                community_id=c,
                user_id="ann",
                state=state,
                price=eur,
                version=version,
                change_time=at(day(-5 if version == 1 else 6)),
            )
        )
    for kind, amount, n in (
        (billing.MRR_MOVE_KIND_NEW, 500, -5),
        (billing.MRR_MOVE_KIND_CHURN, -500, 6),
    ):
        await publish(
            billing.MrrMoved(
                community_id=c,
                kind=kind,
                amount_minor=amount,
                currency="EUR",
                subscription_id=anns,
                move_time=at(day(n)),
            )
        )
    await world.bus.caught_up(STREAMS, "analytics-")
    return c


@pytest.fixture(scope="module")
async def the_hall(world: World) -> str:
    return await hall(world)


def as_(world: World, user: str, *, operator: bool = False) -> list[tuple[str, str]]:
    return world.analytics.auth(user, operator=operator)


async def metrics(
    world: World,
    community_id: str,
    *names: str,
    user: str = "mia",
    operator: bool = False,
    **more: object,
) -> pb.GetMetricsResponse:
    return await world.stub.GetMetrics(  # type: ignore[no-any-return]
        pb.GetMetricsRequest(
            community_id=community_id,
            start_date="2030-01-07",
            end_date="2030-01-16",
            metrics=list(names),
            **more,  # type: ignore[arg-type]
        ),
        metadata=as_(world, user, operator=operator),
    )


async def test_member_growth_is_a_series_of_joins_departures_and_members(
    world: World, the_hall: str
) -> None:
    growth = (await metrics(world, the_hall, "member_growth")).member_growth
    assert [(d.joined, d.left, d.net, d.members) for d in growth.days] == [
        (3, 0, 3, 3),
        (1, 0, 1, 4),
        (1, 0, 1, 5),
        (0, 1, -1, 4),
        (0, 0, 0, 4),
        (0, 0, 0, 4),
        (0, 0, 0, 4),
        (0, 0, 0, 4),
        (1, 0, 1, 5),
        (0, 0, 0, 5),
    ]
    assert (growth.days[0].date, growth.days[-1].date) == ("2030-01-07", "2030-01-16")
    assert (growth.joined, growth.left, growth.net) == (6, 1, 5)


async def test_active_members_are_unique_per_day_week_and_month(
    world: World, the_hall: str
) -> None:
    active = (await metrics(world, the_hall, "active_members")).active_members
    assert [d.dau for d in active.days] == [1, 2, 2, 0, 0, 1, 0, 0, 1, 0]
    assert [d.wau for d in active.days] == [1, 2, 2, 2, 2, 2, 2, 2, 3, 2]
    assert [d.mau for d in active.days] == [1, 2, 2, 2, 2, 2, 2, 2, 3, 3]
    assert active.days[1].stickiness == 1.0
    assert active.stickiness == pytest.approx(7 / 21)
    assert active.active_in_range == 3


async def test_weekly_retention_cohorts(world: World, the_hall: str) -> None:
    cohorts = (await metrics(world, the_hall, "retention")).retention.cohorts
    assert [(c.week_start, c.size, list(c.active)) for c in cohorts] == [
        ("2030-01-07", 5, [2, 0]),
        ("2030-01-14", 1, [1]),
    ]
    assert list(cohorts[0].rate) == [0.4, 0.0]


async def test_participation_per_activity_and_kind(world: World, the_hall: str) -> None:
    participation = (await metrics(world, the_hall, "participation")).participation
    assert [(a.kind, a.registered, a.attended) for a in participation.activities] == [
        (activities_pb.ACTIVITY_KIND_ONLINE_LECTURE, 3, 1)
    ]
    assert participation.activities[0].rate == pytest.approx(1 / 3)
    (lectures,) = participation.kinds
    assert (lectures.activities, lectures.registered, lectures.attended) == (1, 3, 1)


async def test_content_views_and_engagement_by_kind_and_topic(world: World, the_hall: str) -> None:
    found = (await metrics(world, the_hall, "content")).content
    figures = {k.kind: k.figures for k in found.kinds}
    article = figures[content_pb.POST_KIND_ARTICLE]
    assert (article.posts, article.views, article.comments, article.reactions) == (1, 2, 1, 1)
    assert article.engagement_rate == 1.0
    question = figures[content_pb.POST_KIND_QUESTION]
    assert (question.posts, question.views, question.comments, question.reactions) == (1, 0, 2, 0)
    assert question.engagement_rate == 0.0
    topics = {t.topic_id: t.figures for t in found.topics}
    assert topics.keys() == {"", "t1"}
    assert (topics["t1"], topics[""]) == (article, question)


async def test_top_contributors(world: World, the_hall: str) -> None:
    top = (await metrics(world, the_hall, "top_contributors", top=2)).top_contributors
    assert [(c.user_id, c.contributions, c.active_days) for c in top.contributors] == [
        ("ann", 7, 4),
        ("bob", 4, 2),
    ]
    ann = top.contributors[0]
    # Two registrations: the lecture's, and one for the meetup that was cancelled.
    assert (ann.posts, ann.comments, ann.checkins, ann.registrations, ann.attendances) == (
        1,
        2,
        1,
        2,
        1,
    )


async def test_questions_time_to_first_answer_and_share_answered(
    world: World, the_hall: str
) -> None:
    questions = (await metrics(world, the_hall, "questions")).questions
    assert (questions.asked, questions.answered, questions.answered_share) == (1, 1, 1.0)
    assert questions.median_time_to_first_answer.ToTimedelta() == timedelta(hours=2)
    assert questions.mean_time_to_first_answer.ToTimedelta() == timedelta(hours=2)


async def test_checkin_rates_and_streaks(world: World, the_hall: str) -> None:
    found = (await metrics(world, the_hall, "checkins")).checkins
    assert [(d.checked_in, d.members) for d in found.days[:3]] == [(0, 3), (1, 4), (2, 5)]
    assert [d.rate for d in found.days[1:3]] == [0.25, 0.4]
    assert [(s.min_days, s.max_days, s.members) for s in found.streaks] == [(2, 6, 2)]


async def test_funnel_from_joining_to_paying(world: World, the_hall: str) -> None:
    funnel = (await metrics(world, the_hall, "funnel")).funnel
    assert (funnel.joined, funnel.posted, funnel.registered, funnel.paid) == (6, 2, 3, 1)


async def test_busy_hours(world: World, the_hall: str) -> None:
    hours = {
        h.hour: dict(h.counts)
        for h in (await metrics(world, the_hall, "busy_hours")).busy_hours.hours
    }
    assert (hours[8]["joined"], hours[8]["left"]) == (6, 1)
    assert (hours[10]["posts"], hours[10]["questions"]) == (1, 1)
    assert hours[9]["posts"] == 1


async def test_revenue_per_currency_needs_an_admin(world: World, the_hall: str) -> None:
    request = pb.GetRevenueRequest(
        community_id=the_hall, start_date="2030-01-07", end_date="2030-01-16"
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.GetRevenue(request, metadata=as_(world, "mia"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    reply = await world.stub.GetRevenue(request, metadata=as_(world, "olga"))
    eur, usd = reply.currencies
    assert (eur.currency, eur.mrr_start_minor, eur.mrr_end_minor, eur.churn_minor) == (
        "EUR",
        500,
        0,
        -500,
    )
    assert (eur.paying_members, eur.arpu_minor, eur.revenue_churn_rate) == (0, 0, 1.0)
    assert eur.churned_subscriptions == 1
    assert (usd.currency, usd.mrr_start_minor, usd.mrr_end_minor, usd.new_minor) == (
        "USD",
        0,
        1000,
        1000,
    )
    assert (usd.paying_members, usd.arpu_minor, usd.revenue_churn_rate) == (1, 1000, 0.0)


async def test_stats_count_members_posts_and_activities(world: World, the_hall: str) -> None:
    stats = (
        await world.stub.GetCommunityStats(
            pb.GetCommunityStatsRequest(community_id=the_hall), metadata=as_(world, "mia")
        )
    ).stats
    assert (stats.member_count, stats.post_count, stats.activity_count) == (5, 2, 2)
    assert stats.HasField("update_time")
    assert not stats.HasField("archive_time")


async def test_platform_wide_figures_are_for_operators_and_count_people_once(
    world: World, the_hall: str
) -> None:
    far = day(100)  # a day no other test's facts reach
    one = await community(world, far, ann=members_pb.ROLE_MEMBER)
    two = await community(world, far, ann=members_pb.ROLE_MEMBER, ben=members_pb.ROLE_MEMBER)
    for c in (one, two):
        await world.bus.publish(
            content.PostCreated(
                community_id=c,
                post_id=str(uuid.uuid4()),
                author_user_id="ann",
                version=1,
                create_time=at(far.replace(hour=9)),
            )
        )
    await world.bus.caught_up(STREAMS, "analytics-")
    request = pb.GetMetricsRequest(
        start_date=far.date().isoformat(),
        end_date=far.date().isoformat(),
        metrics=["active_members", "member_growth", "funnel"],
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.GetMetrics(request, metadata=as_(world, "olga"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "operators" in (caught.value.details() or "")
    everywhere = await world.stub.GetMetrics(request, metadata=as_(world, "root", operator=True))
    # ann was active in both communities that day: one person, counted once.
    assert [d.dau for d in everywhere.active_members.days] == [1]
    # Memberships are counted per community: olga twice, ann twice, ben once.
    assert everywhere.member_growth.joined == 5
    assert (everywhere.funnel.joined, everywhere.funnel.posted) == (5, 2)


@pytest.mark.parametrize(
    ("start", "end", "field", "problem"),
    [
        ("2030-02-01", "2030-01-01", "end_date", "must not be before"),
        ("2030-01-01", "2032-01-02", "end_date", "at most 731 days"),
        ("2030-02-30", "2030-03-01", "start_date", "calendar date"),
        ("yesterday", "2030-03-01", "start_date", "YYYY-MM-DD"),
    ],
)
async def test_a_bad_range_is_invalid_naming_the_field(
    world: World, the_hall: str, start: str, end: str, field: str, problem: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.GetMetrics(
            pb.GetMetricsRequest(community_id=the_hall, start_date=start, end_date=end),
            metadata=as_(world, "mia"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in field_violations(caught.value)[field]


async def test_an_unknown_metric_is_invalid_naming_it(world: World, the_hall: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metrics(world, the_hall, "funnel", "happiness")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "happiness" in field_violations(caught.value)["metrics[1]"]


async def test_a_plain_member_may_not_read_the_figures(world: World, the_hall: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metrics(world, the_hall, "funnel", user="ann")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "moderator" in (caught.value.details() or "")


async def test_an_erased_member_loses_the_identity_and_the_figures_stay(world: World) -> None:
    c = await community(world, mia=members_pb.ROLE_MODERATOR, eve=members_pb.ROLE_MEMBER)
    for n in (0, 1):
        await world.bus.publish(
            checkins.CheckedIn(
                community_id=c,
                user_id="eve",
                checkin_id=str(uuid.uuid4()),
                streak_days=n + 1,
                checkin_time=at(day(n, 7)),
            )
        )
    await world.bus.caught_up(STREAMS, "analytics-")
    await world.bus.publish(
        members.MemberErased(community_id=c, user_id="eve", version=5, erase_time=at(day(2)))
    )
    await world.bus.caught_up(STREAMS, "analytics-")
    # A fact about her that arrives after the erasure lands on the pseudonym too.
    await world.bus.publish(
        checkins.CheckedIn(
            community_id=c,
            user_id="eve",
            checkin_id=str(uuid.uuid4()),
            streak_days=3,
            checkin_time=at(day(2, 7)),
        )
    )
    await world.bus.caught_up(STREAMS, "analytics-")
    found = await metrics(world, c, "top_contributors", "active_members", "checkins", "funnel")
    (someone,) = found.top_contributors.contributors
    assert someone.user_id.startswith("erased-")
    assert someone.checkins == 3
    assert [d.dau for d in found.active_members.days[:3]] == [1, 1, 1]
    assert [(s.min_days, s.members) for s in found.checkins.streaks] == [(2, 1)]
    assert found.funnel.joined == 3
    export = await world.stub.ExportMyData(
        pb.ExportMyDataRequest(community_id=c, user_id="eve"),
        metadata=as_(world, "root", operator=True),
    )
    assert b'"active_days": []' in export.document
    assert b'"funnel": null' in export.document


async def test_an_archived_community_keeps_its_figures(world: World) -> None:
    c = await community(world, mia=members_pb.ROLE_MODERATOR)
    await world.bus.publish(
        members.CommunityArchived(community_id=c, version=3, archive_time=at(day(4)))
    )
    await world.bus.caught_up(STREAMS, "analytics-")
    stats = (
        await world.stub.GetCommunityStats(
            pb.GetCommunityStatsRequest(community_id=c), metadata=as_(world, "mia")
        )
    ).stats
    assert stats.archive_time.ToDatetime(tzinfo=UTC) == day(4)
    assert stats.member_count == 2
    growth = (await metrics(world, c, "member_growth")).member_growth
    assert growth.joined == 2


async def test_figures_of_another_community_are_not_mixed_in(world: World, the_hall: str) -> None:
    quiet = await community(world, mia=members_pb.ROLE_MODERATOR)
    await world.bus.caught_up(STREAMS, "analytics-")
    stats = (
        await world.stub.GetCommunityStats(
            pb.GetCommunityStatsRequest(community_id=quiet), metadata=as_(world, "mia")
        )
    ).stats
    assert (stats.member_count, stats.post_count, stats.activity_count) == (2, 0, 0)
    found = await metrics(world, quiet, "content", "top_contributors", "funnel")
    assert not found.content.kinds
    assert not found.top_contributors.contributors
    assert found.funnel.joined == 2


async def test_community_id_in_another_spelling_is_refused_not_missed(
    world: World, the_hall: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.GetCommunityStats(
            pb.GetCommunityStatsRequest(community_id=the_hall.upper()), metadata=as_(world, "mia")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lowercase" in field_violations(caught.value)["community_id"]


@pytest.mark.parametrize(("community_id", "problem"), [("", "is required"), ("c1", "UUID")])
async def test_community_id_must_be_a_uuid(world: World, community_id: str, problem: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.GetCommunityStats(
            pb.GetCommunityStatsRequest(community_id=community_id), metadata=as_(world, "mia")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert set(violations) == {"community_id"}
    assert problem in violations["community_id"]


async def test_call_without_token_is_unauthenticated(world: World) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.GetMetrics(
            pb.GetMetricsRequest(start_date="2030-01-01", end_date="2030-01-02")
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


CLI = str(Path(sys.executable).parent / "studyhall")


async def studyhall(world: World, *args: str) -> tuple[int, str]:
    """The `studyhall` command against the module's analytics, signing with its key."""
    env = {
        **os.environ,
        "STUDYHALL_DATA_DIR": str(world.analytics.deps.settings.data_dir),
        "STUDYHALL_ANALYTICS_ADDRESS": world.analytics.server.address,
        "COLUMNS": "200",
    }
    child = await asyncio.create_subprocess_exec(
        CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(child.communicate(), timeout=60)
    return child.returncode or 0, output.decode()


async def test_studyhall_stats_prints_the_figures_with_sparklines_and_as_json(
    world: World, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["world"] != "sqlite":
        pytest.skip("the CLI reads through the API; the stores are compared above")
    today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    c = await community(world, today - timedelta(days=3), mia=members_pb.ROLE_MODERATOR)
    await join(world, c, "bob", today - timedelta(days=1))
    await join(world, c, "ann", today)
    await world.bus.publish(
        checkins.CheckedIn(
            community_id=c,
            user_id="ann",
            checkin_id=str(uuid.uuid4()),
            local_date=today.date().isoformat(),
            streak_days=1,
            checkin_time=at(today),
        )
    )
    await world.bus.caught_up(("members",), "analytics")

    code, output = await studyhall(world, "stats", c, "--days", "7", "--as", "mia", "--json")
    assert code == 0, output
    document = json.loads(output)
    assert document["community_id"] == c
    assert int(document["member_count"]) == 4  # int64: a JSON string
    growth = document["metrics"]["member_growth"]
    assert int(growth["joined"]) == 4
    assert [int(day["members"]) for day in growth["days"]] == [2, 2, 3, 4]
    assert int(document["metrics"]["checkins"]["days"][-1]["checked_in"]) == 1

    code, output = await studyhall(world, "stats", c, "--days", "7", "--as", "mia")
    assert code == 0, output
    members_line = next(line for line in output.splitlines() if "members now" in line)
    assert "4" in members_line
    # Seven days, none before the community: 0 0 0 2 2 3 4 members.
    assert sparkline([0, 0, 0, 2, 2, 3, 4]) in members_line
    assert "check-ins" in output

    code, output = await studyhall(world, "stats", c, "--as", "bob")
    assert code == 1
    assert "PERMISSION_DENIED" in output


async def test_a_fact_the_stream_holds_twice_counts_once(world: World) -> None:
    """A relay that published twice, or a dead letter replayed: the same ce-id under another
    Nats-Msg-Id, so JetStream keeps both copies. The rebuild below reads the copies in
    different fetches and applies."""
    c = await community(world, mia=members_pb.ROLE_MODERATOR, ann=members_pb.ROLE_MEMBER)
    checkin = checkins.CheckedIn(
        community_id=c,
        user_id="ann",
        checkin_id=str(uuid.uuid4()),
        streak_days=1,
        checkin_time=at(day(1)),
    )
    first = envelope_of(checkin, day(1))
    await world.bus.publish_again(checkin, first)
    for n in range(12):
        await join(world, c, f"between-{n}", day(1))
    await world.bus.publish_again(checkin, first)
    await world.bus.caught_up(STREAMS, "analytics-")
    found = await metrics(world, c, "top_contributors")
    (ann,) = [who for who in found.top_contributors.contributors if who.user_id == "ann"]
    assert ann.checkins == 1


@pytest.mark.parametrize("into", STORES)
async def test_a_rebuild_from_the_history_matches_the_live_projections(
    world: World,
    the_hall: str,
    tmp_path: Path,
    into: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Last in the module: every fact the tests above published, erasures included, into
    a fresh store of each kind (PostgreSQL's is written with COPY)."""
    # Small reads and applies: the two copies of the fact above land in different ones.
    monkeypatch.setattr(rebuild_module, "FETCH", 5)
    monkeypatch.setattr(rebuild_module, "APPLY", 10)
    said: list[str] = []
    with new_database(into, request, tmp_path) as url:
        fresh = Database(url)
        try:
            report = await rebuild(
                nats_url=world.analytics.deps.settings.nats_url,
                live=world.analytics.deps.database,
                fresh=fresh,
                subscriptions=subscriptions(),
                migrations=SPEC.migrations,
                say=said.append,
            )
            assert report.differences == {}
            assert report.events > 40
            assert report.sequences["STUDYHALL_MEMBERS"] > 0
            assert report.compared_rows > 50
            # The erased member stayed erased: her id is nowhere in the rebuilt store.
            async with fresh.read() as session:
                names = await session.scalars(select(member_days.c.user_id))
                assert "eve" not in set(names)
        finally:
            await fresh.close()
    assert any("events/s" in line for line in said)
