"""Analytics II through the API, on SQLite and PostgreSQL, with facts published on the real
bus and analytics' own events read back from it: surveys sent to a segment (members runs
beside analytics and answers for the segment), answered once, tallied overall and by
segment, exported and erased; the satisfaction trend with activities' feedback; the nightly
churn sweep and ChurnRiskChanged; peer benchmarks; the weekly report, opened in headless
Chromium (Debian's chromium and chromium-driver, which scripts/bootstrap.sh installs)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from sqlalchemy import func, select
from typer.testing import CliRunner

from services.analytics.app import SPEC
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.sweeps import next_sweep
from services.analytics.store.tables import scheduled_jobs, survey_answers
from services.cli.main import app
from services.members.app import SPEC as MEMBERS_SPEC
from services.members.settings import MembersSettings
from studyhall.analytics.v1 import analytics_events_pb2 as events
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc
from studyhall.content.v1 import content_events_pb2 as content
from studyhall.events.v1 import activities_events_pb2 as activities
from studyhall.members.v1 import members_events_pb2 as members
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from tests.support.bus import Bus, bus
from tests.support.catalogue import QUIET, STORES, new_database
from tests.support.errors import field_violations
from tests.support.members import Hall
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

STREAMS = ("members", "content", "events", "billing")
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


@dataclass
class World:
    analytics: RunningService
    members: RunningService
    stub: pb_grpc.AnalyticsServiceStub
    bus: Bus

    def auth(self, user: str, operator: bool = False) -> list[tuple[str, str]]:
        return self.analytics.auth(user, operator=operator)

    async def caught_up(self) -> None:
        await self.bus.caught_up(STREAMS, "analytics-")

    async def published(self, community_id: str) -> list[Message]:
        """Every event analytics published about the community, read from its stream."""
        subscription = await self.bus.js.subscribe(
            f"studyhall.analytics.{community_id}.>", ordered_consumer=True
        )
        found: list[Message] = []
        try:
            while True:
                message = await subscription.next_msg(timeout=0.5)
                kind = KINDS[message.headers["ce-type"]]  # type: ignore[index]
                found.append(kind.FromString(message.data))
        except nats.errors.TimeoutError:
            pass
        finally:
            await subscription.unsubscribe()
        return found

    async def awaited(self, community_id: str, kind: type[Message], count: int = 1) -> list[Any]:
        """The community's events of `kind` once at least `count` of them reached the bus."""
        seen: list[Any] = []

        async def arrived() -> bool:
            seen[:] = [e for e in await self.published(community_id) if isinstance(e, kind)]
            return len(seen) >= count

        await eventually(arrived, f"{count} {kind.__name__} on the bus", seconds=20)
        return seen


KINDS: dict[str, type[Message]] = {
    kind.DESCRIPTOR.full_name: kind
    for kind in (
        events.SurveyPublished,
        events.SurveyInvited,
        events.SurveyAnswered,
        events.SurveyClosed,
        events.ChurnRiskChanged,
    )
}


@pytest.fixture(autouse=True)
async def fresh_jetstream() -> None:
    """The module's services keep their durable consumers: the streams stay (each test
    works in communities of its own)."""


@pytest.fixture(scope="module", params=STORES)
async def world(
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp(f"analytics2-{request.param}")
    async with (
        bus(nats_url, STREAMS) as connection,
        running_service(
            MEMBERS_SPEC,
            MembersSettings,
            database_url=f"sqlite+aiosqlite:///{directory / 'members.db'}",
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=directory,
            **QUIET,
        ) as people,
    ):
        with new_database(str(request.param), request, directory) as database_url:
            async with running_service(
                SPEC,
                AnalyticsSettings,
                database_url=database_url,
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=directory,
                members_address=people.server.address,
            ) as running:
                yield World(
                    running, people, pb_grpc.AnalyticsServiceStub(running.channel), connection
                )


def at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def created(world: World, community_id: str, topic: str = "english") -> None:
    """Members' CommunityCreated: the community exists for analytics' access checks."""
    await world.bus.publish(
        members.CommunityCreated(
            community_id=community_id,
            owner_user_id="olga",
            topic=topic,
            visibility=members_pb.VISIBILITY_PUBLIC,
            version=1,
        )
    )


async def join(
    world: World,
    community_id: str,
    user: str,
    when: datetime,
    role: int = members_pb.ROLE_MEMBER,
) -> None:
    await world.bus.publish(
        members.MemberJoined(
            community_id=community_id,
            user_id=user,
            role=role,  # type: ignore[arg-type]
            version=1,
            join_time=at(when),
        ),
        when,
    )


async def post(world: World, community_id: str, user: str, when: datetime) -> None:
    await world.bus.publish(
        content.PostCreated(
            community_id=community_id,
            post_id=str(uuid.uuid4()),
            author_user_id=user,
            version=1,
            create_time=at(when),
        ),
        when,
    )


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


QUESTIONS = [
    pb.SurveyQuestion(
        key="overall", kind=pb.QUESTION_KIND_RATING, prompt="How is it going?", required=True
    ),
    pb.SurveyQuestion(
        key="format",
        kind=pb.QUESTION_KIND_SINGLE_CHOICE,
        prompt="Which format helps most?",
        choices=["lecture", "meetup", "challenge"],
    ),
    pb.SurveyQuestion(
        key="topics",
        kind=pb.QUESTION_KIND_MULTIPLE_CHOICE,
        prompt="What should come next?",
        choices=["grammar", "speaking", "writing"],
    ),
    pb.SurveyQuestion(key="ideas", kind=pb.QUESTION_KIND_FREE_TEXT, prompt="Any ideas?"),
    pb.SurveyQuestion(key="recommend", kind=pb.QUESTION_KIND_NPS, prompt="Recommend us?"),
]


async def test_a_survey_sent_to_a_segment_is_answered_once_and_tallied_overall_and_by_segment(
    world: World,
) -> None:
    # Members: olga owns the hall, ada moderates, ben is a member; a segment of the
    # moderators and up (olga, ada) and one of everyone (olga, ada, ben).
    hall = await Hall.create(world.members)
    for user in ("ada", "ben"):
        await hall.join(user)
    await hall.promote("ada", members_pb.ROLE_MODERATOR)
    segments = profiles_grpc.ProfilesServiceStub(world.members.channel)

    async def segment(rule: dict[str, Any]) -> str:
        made = await segments.CreateSegment(
            profiles_pb.CreateSegmentRequest(
                community_id=hall.id, name=f"s-{uuid.uuid4().hex[:6]}", rule=json.dumps(rule)
            ),
            metadata=hall.auth("olga"),
        )
        return str(made.segment.id)

    everyone = await segment({"points_at_least": 0})
    staff = await segment({"role_at_least": "moderator"})
    # Analytics learns the roles from members' facts on the bus.
    now = datetime.now(UTC)
    await created(world, hall.id)
    await join(world, hall.id, "olga", now, members_pb.ROLE_OWNER)
    for user in ("ada", "ben", "cy"):
        await join(world, hall.id, user, now)
    await world.caught_up()

    opened = await world.stub.CreateSurvey(
        pb.CreateSurveyRequest(
            request_id="survey-1",
            community_id=hall.id,
            title="Term one",
            questions=QUESTIONS,
            segment_id=everyone,
        ),
        metadata=world.auth("olga"),
    )
    survey = opened.survey
    assert survey.recipient_count == 3  # olga, ada, ben; cy joined members after
    [published] = await world.awaited(hall.id, events.SurveyPublished)
    assert published.recipient_count == 3
    [invited] = await world.awaited(hall.id, events.SurveyInvited)
    assert sorted(invited.user_ids) == ["ada", "ben", "olga"]
    assert (invited.batch, invited.batches) == (1, 1)
    assert published.survey_id == survey.id
    assert published.question_count == 5

    def answer(user: str, *answers: pb.SurveyAnswer, request_id: str = "") -> Any:
        return world.stub.AnswerSurvey(
            pb.AnswerSurveyRequest(
                request_id=request_id or f"a-{uuid.uuid4().hex}",
                community_id=hall.id,
                survey_id=survey.id,
                answers=list(answers),
            ),
            metadata=world.auth(user),
        )

    async def answered() -> int:
        async with world.analytics.deps.database.read() as session:
            return int(
                await session.scalar(
                    select(func.count()).where(survey_answers.c.survey_id == survey.id)
                )
                or 0
            )

    # cy is not in the snapshot: the survey does not reach them.
    error = await refused(answer("cy", pb.SurveyAnswer(key="overall", score=5)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    seen = await world.stub.GetSurvey(
        pb.GetSurveyRequest(community_id=hall.id, survey_id=survey.id),
        metadata=world.auth("ada"),
    )
    assert seen.can_answer
    assert not seen.answered

    # Bad answers name their field and write nothing.
    error = await refused(
        answer(
            "ada",
            pb.SurveyAnswer(key="overall", score=6),
            pb.SurveyAnswer(key="format", choices=["podcast"]),
            pb.SurveyAnswer(key="topics", choices=["grammar", "grammar"]),
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"answers[0].score", "answers[1].choices[0]", "answers[2].choices"} <= set(
        field_violations(error)
    )
    error = await refused(answer("ada", pb.SurveyAnswer(key="format", choices=["lecture"])))
    assert field_violations(error) == {"answers": "question 'overall' is required"}
    assert await answered() == 0

    ada = (
        pb.SurveyAnswer(key="overall", score=5),
        pb.SurveyAnswer(key="format", choices=["meetup"]),
        pb.SurveyAnswer(key="topics", choices=["grammar", "speaking"]),
        pb.SurveyAnswer(key="ideas", text="More speaking clubs"),
        pb.SurveyAnswer(key="recommend", score=10),
    )
    first = await answer("ada", *ada, request_id="ada-1")
    # A retry of the same request answers as the first; a second answer is refused.
    assert await answer("ada", *ada, request_id="ada-1") == first
    error = await refused(answer("ada", pb.SurveyAnswer(key="overall", score=1)))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "survey_id" in (error.details() or "")
    await answer(
        "ben",
        pb.SurveyAnswer(key="overall", score=2),
        pb.SurveyAnswer(key="format", choices=["lecture"]),
        pb.SurveyAnswer(key="topics", choices=["grammar"]),
        pb.SurveyAnswer(key="recommend", score=3),
    )
    await answer("olga", pb.SurveyAnswer(key="overall", score=4))
    assert await answered() == 3
    assert len(await world.awaited(hall.id, events.SurveyAnswered, 3)) == 3

    results = await world.stub.GetSurveyResults(
        pb.GetSurveyResultsRequest(community_id=hall.id, survey_id=survey.id),
        metadata=world.auth("olga"),
    )
    by_key = {q.key: q for q in results.questions}
    assert results.respondents == 3
    assert by_key["overall"].answered == 3
    assert by_key["overall"].mean_score == pytest.approx(11 / 3, abs=1e-4)
    assert list(by_key["overall"].score_counts) == [0, 0, 1, 0, 1, 1]
    assert {c.label: c.count for c in by_key["format"].choices} == {
        "lecture": 1,
        "meetup": 1,
        "challenge": 0,
    }
    assert {c.label: c.count for c in by_key["topics"].choices}["grammar"] == 2
    recommend = by_key["recommend"]
    assert (recommend.promoters, recommend.passives, recommend.detractors) == (1, 0, 1)
    assert recommend.nps == 0
    assert list(by_key["ideas"].texts) == ["More speaking clubs"]

    # By segment: the staff (olga, ada) only, asked of members with olga's token.
    of_staff = await world.stub.GetSurveyResults(
        pb.GetSurveyResultsRequest(community_id=hall.id, survey_id=survey.id, segment_id=staff),
        metadata=world.auth("olga"),
    )
    assert of_staff.respondents == 2
    assert {q.key: q for q in of_staff.questions}["overall"].mean_score == 4.5

    # A plain member may not read the results.
    error = await refused(
        world.stub.GetSurveyResults(
            pb.GetSurveyResultsRequest(community_id=hall.id, survey_id=survey.id),
            metadata=world.auth("ben"),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    # Answers are personal data: exported, then erased with the figures kept.
    exported = await world.stub.ExportMyData(
        pb.ExportMyDataRequest(community_id=hall.id), metadata=world.auth("ada")
    )
    document = json.loads(exported.document)
    [mine] = document["survey_answers"]
    assert mine["survey_id"] == survey.id
    assert mine["answers"]["ideas"]["text"]
    await world.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=hall.id, confirm=True), metadata=world.auth("ada")
    )
    after = await world.stub.GetSurveyResults(
        pb.GetSurveyResultsRequest(community_id=hall.id, survey_id=survey.id),
        metadata=world.auth("olga"),
    )
    assert after.respondents == 3
    assert {q.key: q for q in after.questions}["overall"].mean_score == pytest.approx(
        11 / 3, abs=1e-4
    )
    assert list({q.key: q for q in after.questions}["ideas"].texts) == []
    exported = await world.stub.ExportMyData(
        pb.ExportMyDataRequest(community_id=hall.id), metadata=world.auth("ada")
    )
    assert json.loads(exported.document)["survey_answers"] == []

    # Closed: no more answers.
    closed = await world.stub.CloseSurvey(
        pb.CloseSurveyRequest(community_id=hall.id, survey_id=survey.id),
        metadata=world.auth("olga"),
    )
    assert closed.survey.HasField("close_time")
    assert closed.survey.answer_count == 3
    error = await refused(answer("ben", pb.SurveyAnswer(key="overall", score=3)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    [ended] = await world.awaited(hall.id, events.SurveyClosed)
    assert ended.answer_count == 3


async def test_a_survey_without_questions_or_with_bad_ones_is_refused_naming_the_field(
    world: World,
) -> None:
    community_id = str(uuid.uuid4())
    await created(world, community_id)
    await join(world, community_id, "olga", datetime.now(UTC), members_pb.ROLE_OWNER)
    await join(world, community_id, "ben", datetime.now(UTC))
    await world.caught_up()

    def create(user: str = "olga", **fields: Any) -> Any:
        return world.stub.CreateSurvey(
            pb.CreateSurveyRequest(community_id=community_id, **fields),
            metadata=world.auth(user),
        )

    error = await refused(create(title="Empty"))
    assert field_violations(error) == {"questions": "a survey needs at least one question"}
    error = await refused(
        create(
            title="",
            questions=[
                pb.SurveyQuestion(key="a", kind=pb.QUESTION_KIND_RATING, prompt="A?"),
                pb.SurveyQuestion(key="a", kind=pb.QUESTION_KIND_NPS, prompt="B?"),
                pb.SurveyQuestion(
                    key="Bad Key", kind=pb.QUESTION_KIND_SINGLE_CHOICE, prompt="C?", choices=["x"]
                ),
                pb.SurveyQuestion(key="d", prompt="D?"),
            ],
        )
    )
    assert set(field_violations(error)) == {
        "title",
        "questions[1].key",
        "questions[2].key",
        "questions[2].choices",
        "questions[3].kind",
    }
    error = await refused(create(user="ben", title="Mine", questions=QUESTIONS[:1]))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await world.stub.ListSurveys(
        pb.ListSurveysRequest(community_id=community_id), metadata=world.auth("ben")
    )
    assert list(listed.surveys) == []
    assert await world.published(community_id) == []


async def test_satisfaction_per_week_folds_survey_ratings_nps_and_activity_feedback(
    world: World,
) -> None:
    community_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    await created(world, community_id)
    await join(world, community_id, "olga", now, members_pb.ROLE_OWNER)
    await join(world, community_id, "ada", now)
    monday = now.date() - timedelta(days=now.weekday())
    last_week = datetime.combine(monday - timedelta(days=5), time(10), tzinfo=UTC)
    for rating, when in ((5, last_week), (3, last_week), (4, now)):
        await world.bus.publish(
            activities.FeedbackSubmitted(
                feedback_id=str(uuid.uuid4()),
                activity_id=str(uuid.uuid4()),
                community_id=community_id,
                user_id="ada",
                overall_rating=rating,
                version=1,
                submit_time=at(when),
            ),
            when,
        )
    await world.caught_up()
    survey = await world.stub.CreateSurvey(
        pb.CreateSurveyRequest(
            community_id=community_id, title="Pulse", questions=[QUESTIONS[0], QUESTIONS[4]]
        ),
        metadata=world.auth("olga"),
    )
    await world.stub.AnswerSurvey(
        pb.AnswerSurveyRequest(
            community_id=community_id,
            survey_id=survey.survey.id,
            answers=[
                pb.SurveyAnswer(key="overall", score=3),
                pb.SurveyAnswer(key="recommend", score=9),
            ],
        ),
        metadata=world.auth("ada"),
    )
    trend = await world.stub.GetSatisfactionTrend(
        pb.GetSatisfactionTrendRequest(
            community_id=community_id,
            start_date=(monday - timedelta(days=7)).isoformat(),
            end_date=now.date().isoformat(),
        ),
        metadata=world.auth("olga"),
    )
    before, this = trend.weeks
    assert before.week_start == (monday - timedelta(days=7)).isoformat()
    assert (before.feedback, before.mean_feedback, before.ratings) == (2, 4.0, 0)
    assert before.satisfaction == 75.0  # (100 + 50) / 2
    assert (this.feedback, this.ratings, this.nps_answers) == (1, 1, 1)
    assert (this.mean_rating, this.nps) == (3.0, 100.0)
    assert this.satisfaction == pytest.approx((75 + 50 + 90) / 3, abs=0.01)


async def test_the_nightly_sweep_flags_members_whose_activity_fell_and_publishes_it(
    world: World,
) -> None:
    """steady posts every week; fading posted a lot five to three weeks ago and little since;
    gone posted a month ago and nothing after; new joined yesterday."""
    community_id = str(uuid.uuid4())
    # The community's first sweep judges the day before it runs: yesterday when the test runs
    # between midnight and the sweep time (UTC), today otherwise.
    first_sweep = next_sweep(datetime.now(UTC))
    today = datetime.combine((first_sweep - timedelta(days=1)).date(), time(9), tzinfo=UTC)
    await created(world, community_id)
    await join(world, community_id, "olga", today - timedelta(days=60), members_pb.ROLE_OWNER)
    for user in ("steady", "fading", "gone"):
        await join(world, community_id, user, today - timedelta(days=60))
    await join(world, community_id, "new", today - timedelta(days=1))
    for days_ago in range(0, 50, 5):
        await post(world, community_id, "steady", today - timedelta(days=days_ago))
    for days_ago in (36, 35, 34, 33, 32, 31, 30, 2):
        await post(world, community_id, "fading", today - timedelta(days=days_ago))
    for days_ago in (34, 33, 30, 29):
        await post(world, community_id, "gone", today - timedelta(days=days_ago))
    await world.caught_up()

    scores = await world.stub.ListEngagementScores(
        pb.ListEngagementScoresRequest(community_id=community_id),
        metadata=world.auth("olga"),
    )
    ranked = [s.user_id for s in scores.scores]
    assert ranked[0] == "steady"
    assert ranked[-2:] == ["new", "olga"]
    assert {s.user_id: s.last_active_date for s in scores.scores}["gone"] == (
        (today - timedelta(days=29)).date().isoformat()
    )

    # The sweep of the day just ended runs once the night comes (here: the scheduler is
    # asked what is due a minute after that sweep's time).
    tomorrow = first_sweep + timedelta(minutes=1)
    scheduler = world.analytics.deps.scheduler
    assert scheduler is not None
    await scheduler.run_due(now=tomorrow)
    risks = await world.stub.ListChurnRisks(
        pb.ListChurnRisksRequest(community_id=community_id), metadata=world.auth("olga")
    )
    assert [(m.user_id, m.risk) for m in risks.members] == [
        ("gone", pb.CHURN_RISK_LAPSED),
        ("fading", pb.CHURN_RISK_FALLING),
    ]
    assert risks.swept_date == today.date().isoformat()
    changed = await world.awaited(community_id, events.ChurnRiskChanged, 2)
    assert {(e.user_id, e.risk, e.previous_risk, e.version) for e in changed} == {
        ("gone", pb.CHURN_RISK_LAPSED, pb.CHURN_RISK_NONE, 1),
        ("fading", pb.CHURN_RISK_FALLING, pb.CHURN_RISK_NONE, 1),
    }
    # The sweep ran once: asked again, nothing is due and nothing more is published.
    assert await scheduler.run_due(now=tomorrow) == 0
    assert len(await world.awaited(community_id, events.ChurnRiskChanged, 2)) == 2

    error = await refused(
        world.stub.ListChurnRisks(
            pb.ListChurnRisksRequest(community_id=community_id), metadata=world.auth("gone")
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    # Archived, the community is swept no more: the next night's sweep sets no other.
    await world.bus.publish(
        members.CommunityArchived(community_id=community_id, version=2, archive_time=at(today))
    )
    await world.caught_up()
    assert await sweeps_of(world, community_id) == [
        f"{community_id}/{tomorrow.date() + timedelta(days=1)}"
    ]
    await scheduler.run_due(now=tomorrow + timedelta(days=1))
    assert await sweeps_of(world, community_id) == []


async def sweeps_of(world: World, community_id: str) -> list[str]:
    async with world.analytics.deps.database.read() as session:
        return list(
            await session.scalars(
                select(scheduled_jobs.c.key).where(scheduled_jobs.c.community_id == community_id)
            )
        )


async def test_benchmarks_place_a_community_among_its_topic_peers_without_their_figures(
    world: World,
) -> None:
    topic = f"Chess {uuid.uuid4().hex[:8]}"
    yesterday = datetime.now(UTC).replace(hour=10) - timedelta(days=1)
    communities = [str(uuid.uuid4()) for _ in range(11)]
    for n, community_id in enumerate(communities):
        await created(world, community_id, topic.upper() if n % 2 else f" {topic} ")
        await join(world, community_id, "olga", yesterday, members_pb.ROLE_OWNER)
        # Community n has n + 1 members of whom n post: its figures grow with n.
        for m in range(n):
            user = f"m{m}"
            await join(world, community_id, user, yesterday)
            await post(world, community_id, user, yesterday)
    await world.caught_up()

    def benchmarks(community_id: str) -> Any:
        return world.stub.GetBenchmarks(
            pb.GetBenchmarksRequest(community_id=community_id), metadata=world.auth("olga")
        )

    top = await benchmarks(communities[10])
    assert top.topic == topic.lower()
    assert top.peers == 10
    figures = {b.metric: (b.value, b.percentile) for b in top.benchmarks}
    assert figures["active_share"] == (pytest.approx(10 / 11, abs=1e-4), 100)
    # Above one peer, level with nine (counted half): (1 + 9 / 2) / 10.
    assert figures["posts_per_active_member"] == (1.0, 55)
    middle = await benchmarks(communities[5])
    assert {b.metric: b.percentile for b in middle.benchmarks}["active_share"] == 50
    # Nothing of a peer's own figures in the answer: metric, own value, percentile.
    assert all(b.ListFields() and len(b.ListFields()) <= 3 for b in middle.benchmarks)

    # A topic with fewer than ten peers gives no benchmark.
    lonely = str(uuid.uuid4())
    await created(world, lonely, "Go")
    await join(world, lonely, "olga", yesterday, members_pb.ROLE_OWNER)
    await world.caught_up()
    alone = await benchmarks(lonely)
    assert alone.topic == "go"
    assert list(alone.benchmarks) == []
    error = await refused(
        world.stub.GetBenchmarks(
            pb.GetBenchmarksRequest(community_id=communities[3]), metadata=world.auth("m0")
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_weekly_report_opens_in_chromium_with_its_charts_drawn(
    world: World, tmp_path: Path
) -> None:
    community_id = str(uuid.uuid4())
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday() + 7)
    await created(world, community_id)
    await join(
        world,
        community_id,
        "olga",
        datetime.combine(monday, time(8), tzinfo=UTC),
        members_pb.ROLE_OWNER,
    )
    for n, user in enumerate(("ada", "ben", "cy")):
        day = datetime.combine(monday + timedelta(days=n), time(9), tzinfo=UTC)
        await join(world, community_id, user, day)
        for extra in range(n + 1):
            await post(world, community_id, user, day + timedelta(days=extra))
    await world.caught_up()

    # The CLI writes it, as an operator would run it; the CSV holds the same figures.
    runner = CliRunner()
    env = {
        "STUDYHALL_DATA_DIR": str(world.analytics.deps.settings.data_dir),
        "STUDYHALL_ANALYTICS_ADDRESS": world.analytics.server.address,
        "COLUMNS": "200",
    }
    page = tmp_path / "report.html"
    week = ["--week", monday.isoformat(), "--as", "olga"]
    result = await asyncio.to_thread(
        runner.invoke,
        app,
        ["analytics", "report", community_id, "--out", str(page), *week, "--json"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["week_start"] == monday.isoformat()
    table = tmp_path / "report.csv"
    result = await asyncio.to_thread(
        runner.invoke,
        app,
        ["analytics", "report", community_id, "--out", str(table), "--csv", *week],
        env=env,
    )
    assert result.exit_code == 0, result.output
    rows = {(s, label): v for s, label, v in list(csv.reader(io.StringIO(table.read_text())))[1:]}
    assert rows[("week", "joined")] == "4"
    assert rows[("week", "posts")] == "6"
    assert rows[("daily_active", (monday + timedelta(days=2)).isoformat())] == "2"

    html = page.read_text()
    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.get(page.as_uri())
        assert browser.title == f"Weekly report {monday.isoformat()}"
        charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) >= 3
        # Drawn: each chart has a size on the page, and its bars or line take up room.
        drawn = browser.execute_script(
            """return [...document.querySelectorAll('svg.chart')].map(svg => ({
                 title: svg.getAttribute('aria-label'),
                 width: svg.getBoundingClientRect().width,
                 marks: [...svg.querySelectorAll('rect.bar, path.series')]
                          .map(mark => mark.getBBox())
                          .filter(box => box.width > 0 && box.height > 0).length}))"""
        )
        assert all(chart["width"] > 0 for chart in drawn), drawn
        by_title = {chart["title"]: chart["marks"] for chart in drawn}
        # Someone posted on each day from Monday to Friday.
        assert by_title["Daily active members"] == 5
        assert by_title["Posts, comments and reactions"] == 5
        assert by_title["Weekly active members, last 8 weeks"] == 1
    finally:
        browser.quit()


async def test_answers_sent_at_once_all_count_and_a_member_still_answers_once(
    world: World,
) -> None:
    community_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    await created(world, community_id)
    await join(world, community_id, "olga", now, members_pb.ROLE_OWNER)
    crowd = [f"p{n}" for n in range(8)]
    for user in crowd:
        await join(world, community_id, user, now)
    await world.caught_up()
    opened = await world.stub.CreateSurvey(
        pb.CreateSurveyRequest(community_id=community_id, title="Quick", questions=QUESTIONS[:1]),
        metadata=world.auth("olga"),
    )
    survey_id = opened.survey.id

    async def answer(user: str) -> grpc.StatusCode:
        try:
            await world.stub.AnswerSurvey(
                pb.AnswerSurveyRequest(
                    community_id=community_id,
                    survey_id=survey_id,
                    answers=[pb.SurveyAnswer(key="overall", score=4)],
                ),
                metadata=world.auth(user),
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    # Eight members at once, and the first of them four times more at the same moment.
    codes = await asyncio.gather(*(answer(user) for user in [*crowd, *[crowd[0]] * 4]))
    assert codes.count(grpc.StatusCode.OK) == 8
    assert codes.count(grpc.StatusCode.ALREADY_EXISTS) == 4
    seen = await world.stub.GetSurvey(
        pb.GetSurveyRequest(community_id=community_id, survey_id=survey_id),
        metadata=world.auth("olga"),
    )
    assert seen.survey.answer_count == 8
    results = await world.stub.GetSurveyResults(
        pb.GetSurveyResultsRequest(community_id=community_id, survey_id=survey_id),
        metadata=world.auth("olga"),
    )
    assert results.respondents == 8


async def test_the_cli_runs_a_survey_and_reads_the_figures(world: World) -> None:
    community_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    await created(world, community_id)
    await join(world, community_id, "olga", now, members_pb.ROLE_OWNER)
    await join(world, community_id, "ada", now)
    await post(world, community_id, "ada", now)
    await world.caught_up()
    runner = CliRunner()
    env = {
        "STUDYHALL_DATA_DIR": str(world.analytics.deps.settings.data_dir),
        "STUDYHALL_ANALYTICS_ADDRESS": world.analytics.server.address,
        "COLUMNS": "200",
    }

    async def cli(*args: str, user: str = "olga") -> str:
        result = await asyncio.to_thread(
            runner.invoke, app, ["analytics", *args, "--as", user], env=env
        )
        assert result.exit_code == 0, result.output
        return result.output

    made = json.loads(
        await cli(
            "surveys",
            "create",
            community_id,
            "--title",
            "Pulse",
            "--question",
            "mood:rating:How is it going?:required",
            "--question",
            "next:single:What next?:grammar|speaking",
            "--json",
        )
    )
    survey_id = made["survey"]["id"]
    assert [q["key"] for q in made["survey"]["questions"]] == ["mood", "next"]
    assert survey_id in await cli("surveys", "list", community_id)
    await cli(
        "surveys",
        "answer",
        community_id,
        survey_id,
        "--answer",
        "mood=4",
        "--answer",
        "next=speaking",
        user="ada",
    )
    results = json.loads(await cli("surveys", "results", community_id, survey_id, "--json"))
    assert results["respondents"] == "1"  # int64 in JSON
    assert "closed with 1 answers" in await cli("surveys", "close", community_id, survey_id)
    trend = json.loads(await cli("satisfaction", community_id, "--json"))
    assert trend["weeks"][-1]["satisfaction"] == 75.0
    scores = json.loads(await cli("engagement", community_id, "--json"))
    assert scores["scores"][0]["user_id"] == "ada"
    assert json.loads(await cli("churn", community_id, "--json"))["community_id"] == community_id
    assert "fewer than 10 peers" in await cli("benchmarks", community_id)

    # A bad question exits non-zero naming the field.
    result = await asyncio.to_thread(
        runner.invoke,
        app,
        [
            "analytics",
            "surveys",
            "create",
            community_id,
            "--title",
            "x",
            "--question",
            "a:single:Pick:only",
            "--as",
            "olga",
        ],
        env=env,
    )
    assert result.exit_code != 0
    assert "questions[0].choices" in result.output
