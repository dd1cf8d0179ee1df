"""The request catalogue of the analytics process: AnalyticsService (see
tests/support/catalogue.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.analytics.app import SPEC
from services.analytics.consumers import apply_facts
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.tables import metadata
from services.kit.access import Role
from services.kit.events.envelope import Envelope, new_event_id
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.billing.v1 import billing_events_pb2 as billing_events
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.members.v1 import members_events_pb2 as members_events
from tests.support.access import grant
from tests.support.catalogue import Process, Rpc, World, data_rights_entries
from tests.support.services import RunningService

ANALYTICS = pb.DESCRIPTOR.services_by_name["AnalyticsService"]
OWNER = "olga"

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
    *data_rights_entries(ANALYTICS),
]


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A community the owner owns, with figures: analytics has no call that writes, so its
    facts go through the consumers' own apply, as a batch from the bus would (the world's
    services run without consumers; tests/service/test_analytics_metrics.py publishes on
    the real bus)."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    when = Timestamp()
    when.FromDatetime(datetime(2030, 2, 1, 9, tzinfo=UTC))
    facts: list[Message] = [
        members_events.MemberJoined(
            community_id=community_id, user_id=OWNER, version=1, join_time=when
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
    return World(community_id=community_id, owner=OWNER)


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
