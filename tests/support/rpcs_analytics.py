"""The request catalogue of the analytics process: AnalyticsService (see
tests/support/catalogue.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.analytics.app import SPEC
from services.analytics.consumers import apply_facts
from services.analytics.engagement.sweep import sweep
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.sweeps import CHURN_SWEEP, SWEEP_TIME
from services.analytics.store.tables import metadata
from services.kit.access import Role
from services.kit.events.envelope import Envelope, new_event_id
from services.kit.schedule import Job
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc
from studyhall.billing.v1 import billing_events_pb2 as billing_events
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.events.v1 import activities_events_pb2 as activities_events
from studyhall.members.v1 import members_events_pb2 as members_events
from tests.support.access import grant
from tests.support.catalogue import Process, Rpc, World, data_rights_entries, new_id
from tests.support.services import RunningService

ANALYTICS = pb.DESCRIPTOR.services_by_name["AnalyticsService"]
OWNER = "olga"
# A member active early in January and never after: lapsed when swept on SWEPT.
LAPSED = "quinn"
SWEPT = "2030-02-10"
_RATING = pb.SurveyQuestion(
    key="overall", kind=pb.QUESTION_KIND_RATING, prompt="Overall?", required=True
)
_CHOICE = pb.SurveyQuestion(
    key="topic",
    kind=pb.QUESTION_KIND_SINGLE_CHOICE,
    prompt="What next?",
    choices=["grammar", "speaking"],
)

CATALOGUE: list[Rpc] = [
    Rpc(
        ANALYTICS,
        "GetCommunityStats",
        lambda w: pb.GetCommunityStatsRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ANALYTICS,
        "GetMetrics",
        lambda w: pb.GetMetricsRequest(
            community_id=w.community_id, start_date="2030-01-01", end_date="2030-03-31"
        ),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ANALYTICS,
        "GetRevenue",
        lambda w: pb.GetRevenueRequest(
            community_id=w.community_id, start_date="2030-01-01", end_date="2030-03-31"
        ),
        Role.ADMIN,
        False,
    ),
    Rpc(
        ANALYTICS,
        "CreateSurvey",
        lambda w: pb.CreateSurveyRequest(
            request_id=new_id(),
            community_id=w.community_id,
            title="How are we doing?",
            questions=[_RATING, _CHOICE],
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        ANALYTICS,
        "GetSurvey",
        lambda w: pb.GetSurveyRequest(community_id=w.community_id, survey_id=w.survey_id),
        Role.MEMBER,
        False,
    ),
    Rpc(
        ANALYTICS,
        "ListSurveys",
        lambda w: pb.ListSurveysRequest(community_id=w.community_id),
        Role.MEMBER,
        False,
    ),
    Rpc(
        ANALYTICS,
        "AnswerSurvey",
        lambda w: pb.AnswerSurveyRequest(
            request_id=new_id(),
            community_id=w.community_id,
            survey_id=w.survey_id,
            answers=[pb.SurveyAnswer(key="overall", score=4)],
        ),
        Role.MEMBER,
        True,
    ),
    Rpc(
        ANALYTICS,
        "GetSurveyResults",
        lambda w: pb.GetSurveyResultsRequest(community_id=w.community_id, survey_id=w.survey_id),
        Role.ADMIN,
        False,
    ),
    # After AnswerSurvey: the request catalogue's test makes every call in one world.
    Rpc(
        ANALYTICS,
        "CloseSurvey",
        lambda w: pb.CloseSurveyRequest(
            request_id=new_id(), community_id=w.community_id, survey_id=w.survey_id
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        ANALYTICS,
        "GetSatisfactionTrend",
        lambda w: pb.GetSatisfactionTrendRequest(
            community_id=w.community_id, start_date="2030-01-01", end_date="2030-03-31"
        ),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ANALYTICS,
        "ListEngagementScores",
        lambda w: pb.ListEngagementScoresRequest(community_id=w.community_id, date=SWEPT),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ANALYTICS,
        "ListChurnRisks",
        lambda w: pb.ListChurnRisksRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ANALYTICS,
        "GetBenchmarks",
        lambda w: pb.GetBenchmarksRequest(community_id=w.community_id, date=SWEPT),
        Role.ADMIN,
        False,
    ),
    Rpc(
        ANALYTICS,
        "GetWeeklyReport",
        lambda w: pb.GetWeeklyReportRequest(community_id=w.community_id, date="2030-02-04"),
        Role.MODERATOR,
        False,
        document=True,
    ),
    *data_rights_entries(ANALYTICS),
]


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A community the owner owns, with figures, a member at churn risk and an open survey:
    the facts go through the consumers' own apply, as a batch from the bus would (the
    world's services run without consumers; tests/service/test_analytics_metrics.py
    publishes on the real bus), the sweep through its own handler, the survey through the
    API."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    when = _at(datetime(2030, 2, 1, 9, tzinfo=UTC))
    early = _at(datetime(2030, 1, 5, 9, tzinfo=UTC))
    facts: list[Message] = [
        members_events.CommunityCreated(
            community_id=community_id, owner_user_id=OWNER, topic="English", version=1
        ),
        members_events.MemberJoined(
            community_id=community_id, user_id=OWNER, version=1, join_time=when
        ),
        members_events.MemberJoined(
            community_id=community_id, user_id=LAPSED, version=1, join_time=early
        ),
        *(
            content_events.PostCreated(
                community_id=community_id,
                post_id=str(uuid.uuid4()),
                author_user_id=LAPSED,
                version=1,
                create_time=_at(datetime(2030, 1, day, 9, tzinfo=UTC)),
            )
            for day in (5, 6)
        ),
        activities_events.FeedbackSubmitted(
            feedback_id=str(uuid.uuid4()),
            activity_id=str(uuid.uuid4()),
            community_id=community_id,
            user_id=OWNER,
            overall_rating=4,
            version=1,
            submit_time=when,
        ),
        content_events.PostCreated(
            community_id=community_id,
            post_id=str(uuid.uuid4()),
            author_user_id=OWNER,
            version=1,
            create_time=when,
        ),
        billing_events.MrrMoved(
            community_id=community_id,
            kind=billing_events.MRR_MOVE_KIND_NEW,
            amount_minor=900,
            currency="USD",
            move_time=when,
        ),
    ]
    async with running.deps.database.write() as session:
        await apply_facts(session, [(fact, _envelope(fact, community_id)) for fact in facts])
    due = datetime.combine(date.fromisoformat(SWEPT) + timedelta(days=1), SWEEP_TIME)
    async with running.deps.database.write() as session:
        await sweep(session, Job(CHURN_SWEEP, f"{community_id}/{SWEPT}", community_id, due))
    created = await pb_grpc.AnalyticsServiceStub(running.channel).CreateSurvey(
        pb.CreateSurveyRequest(
            request_id=new_id(), community_id=community_id, title="Hello", questions=[_RATING]
        ),
        metadata=running.auth(OWNER),
    )
    return World(community_id=community_id, owner=OWNER, survey_id=created.survey.id)


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _envelope(fact: Message, community_id: str) -> Envelope:
    return Envelope(
        id=new_event_id(),
        source="/studyhall/catalogue",
        type=fact.DESCRIPTOR.full_name,
        time=datetime.now(UTC),
        subject=f"communities/{community_id}",
        community_id=community_id,
        data=fact.SerializeToString(),
    )


PROCESS = Process(
    name="analytics",
    spec=SPEC,
    settings=AnalyticsSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
)
