"""Each service answers only within the community a call touches, and only to the roles that
community grants (DESIGN.md rule 8): outsiders find no private community, members below the
role a call needs are told which role it needs, people who left are outsiders again,
operators may do anything, and one community's records never answer for another's.

Roles are set up in each service's projection as its consumer of members' events writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Table, func, select

from services.analytics.app import SPEC as ANALYTICS
from services.analytics.settings import AnalyticsSettings
from services.analytics.store import tables as analytics_tables
from services.billing.app import SPEC as BILLING
from services.billing.settings import BillingSettings
from services.billing.store import tables as billing_tables
from services.content.app import SPEC as CONTENT
from services.content.settings import ContentSettings
from services.content.store import tables as content_tables
from services.events.app import SPEC as EVENTS
from services.events.settings import EventsSettings
from services.events.store import tables as events_tables
from services.kit.access import PRIVATE, AccessTables, Role
from services.kit.projection import upsert_newer
from services.kit.service import ServiceSpec
from services.kit.settings import ServiceSettings
from studyhall.analytics.v1 import analytics_service_pb2 as analytics_pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as analytics_grpc
from studyhall.billing.v1 import billing_service_pb2 as billing_pb
from studyhall.billing.v1 import billing_service_pb2_grpc as billing_grpc
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.content.v1 import content_service_pb2_grpc as content_grpc
from studyhall.events.v1 import activities_service_pb2 as events_pb
from studyhall.events.v1 import activities_service_pb2_grpc as events_grpc
from tests.support.access import PUBLIC, grant
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service

UNLISTED = 2  # studyhall.members.v1.Visibility.VISIBILITY_UNLISTED

Metadata = Sequence[tuple[str, str]] | None
# (channel, community_id, id of an existing record, metadata) -> id of the record made or read
Call = Callable[[grpc.aio.Channel, str, str, Metadata], Awaitable[str]]


# The calls, each with a request that passes validation, so only access decides.


async def publish_post(
    channel: grpc.aio.Channel, community_id: str, record_id: str, metadata: Metadata
) -> str:
    reply = await content_grpc.ContentServiceStub(channel).CreatePost(
        content_pb.CreatePostRequest(
            request_id=f"publish-{uuid.uuid4()}",
            community_id=community_id,
            kind=content_pb.POST_KIND_ARTICLE,
            title="Spaced repetition, week one",
            body="What worked: reviewing at 1, 3 and 7 days.",
        ),
        metadata=metadata,
    )
    return str(reply.post.id)


async def read_post(
    channel: grpc.aio.Channel, community_id: str, record_id: str, metadata: Metadata
) -> str:
    reply = await content_grpc.ContentServiceStub(channel).GetPost(
        content_pb.GetPostRequest(community_id=community_id, post_id=record_id),
        metadata=metadata,
    )
    return str(reply.post.id)


async def schedule_activity(
    channel: grpc.aio.Channel, community_id: str, record_id: str, metadata: Metadata
) -> str:
    start = Timestamp()
    start.FromDatetime(datetime(2031, 3, 14, 18, 30, tzinfo=UTC))
    reply = await events_grpc.ActivitiesServiceStub(channel).CreateActivity(
        events_pb.CreateActivityRequest(
            request_id=f"schedule-{uuid.uuid4()}",
            community_id=community_id,
            kind=events_pb.ACTIVITY_KIND_ONLINE_LECTURE,
            title="Reading papers efficiently",
            start_time=start,
        ),
        metadata=metadata,
    )
    return str(reply.activity.id)


async def read_activity(
    channel: grpc.aio.Channel, community_id: str, record_id: str, metadata: Metadata
) -> str:
    reply = await events_grpc.ActivitiesServiceStub(channel).GetActivity(
        events_pb.GetActivityRequest(community_id=community_id, activity_id=record_id),
        metadata=metadata,
    )
    return str(reply.activity.id)


async def sell_product(
    channel: grpc.aio.Channel, community_id: str, record_id: str, metadata: Metadata
) -> str:
    reply = await billing_grpc.BillingServiceStub(channel).CreateProduct(
        billing_pb.CreateProductRequest(
            request_id=f"catalogue-{uuid.uuid4()}",
            community_id=community_id,
            kind=billing_pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
            name="Supporter",
            price=billing_pb.Money(currency="EUR", amount_minor=499),
            billing_period=billing_pb.BILLING_PERIOD_MONTHLY,
        ),
        metadata=metadata,
    )
    return str(reply.product.id)


async def read_product(
    channel: grpc.aio.Channel, community_id: str, record_id: str, metadata: Metadata
) -> str:
    reply = await billing_grpc.BillingServiceStub(channel).GetProduct(
        billing_pb.GetProductRequest(community_id=community_id, product_id=record_id),
        metadata=metadata,
    )
    return str(reply.product.id)


async def read_figures(
    channel: grpc.aio.Channel, community_id: str, record_id: str, metadata: Metadata
) -> str:
    reply = await analytics_grpc.AnalyticsServiceStub(channel).GetCommunityStats(
        analytics_pb.GetCommunityStatsRequest(community_id=community_id), metadata=metadata
    )
    # A community's figures are its record: known by the community's id.
    return str(reply.stats.community_id) if reply.stats.post_count else ""


@dataclass(frozen=True)
class Service:
    spec: ServiceSpec
    settings: type[ServiceSettings]
    access: AccessTables
    records: Table
    idempotency_keys: Table | None
    create: Call | None  # the call that makes a record, if the API has one


@dataclass(frozen=True)
class Rpc:
    """One call of one service and the least role it needs (None: reading, which anyone may do
    in a public or unlisted community and only members in a private one)."""

    action: str
    service: Service
    needs: Role | None
    writes: bool
    call: Call


CONTENT_SERVICE = Service(
    CONTENT,
    ContentSettings,
    content_tables.access,
    content_tables.posts,
    content_tables.idempotency_keys,
    publish_post,
)
EVENTS_SERVICE = Service(
    EVENTS,
    EventsSettings,
    events_tables.access,
    events_tables.activities,
    events_tables.idempotency_keys,
    schedule_activity,
)
BILLING_SERVICE = Service(
    BILLING,
    BillingSettings,
    billing_tables.access,
    billing_tables.products,
    billing_tables.idempotency_keys,
    sell_product,
)
ANALYTICS_SERVICE = Service(
    ANALYTICS,
    AnalyticsSettings,
    analytics_tables.access,
    analytics_tables.community_stats,
    None,
    None,
)

PUBLISH_POST = Rpc("publish-post", CONTENT_SERVICE, Role.MEMBER, True, publish_post)
READ_POST = Rpc("read-post", CONTENT_SERVICE, None, False, read_post)
SCHEDULE_ACTIVITY = Rpc(
    "schedule-activity", EVENTS_SERVICE, Role.MODERATOR, True, schedule_activity
)
READ_ACTIVITY = Rpc("read-activity", EVENTS_SERVICE, None, False, read_activity)
SELL_PRODUCT = Rpc("sell-product", BILLING_SERVICE, Role.ADMIN, True, sell_product)
READ_PRODUCT = Rpc("read-product", BILLING_SERVICE, None, False, read_product)
READ_FIGURES = Rpc("read-figures", ANALYTICS_SERVICE, Role.MODERATOR, False, read_figures)

EVERY_RPC = [
    PUBLISH_POST,
    READ_POST,
    SCHEDULE_ACTIVITY,
    READ_ACTIVITY,
    SELL_PRODUCT,
    READ_PRODUCT,
    READ_FIGURES,
]
READS_OF_RECORDS = [READ_POST, READ_ACTIVITY, READ_PRODUCT]


def each_rpc(rpcs: Sequence[Rpc] = EVERY_RPC) -> list[object]:
    return [pytest.param(rpc, id=rpc.action) for rpc in rpcs]


def below_what_it_needs() -> list[object]:
    """Every call needing more than membership, with each role too low for it."""
    return [
        pytest.param(rpc, held, id=f"{rpc.action}-as-{held.name.lower()}")
        for rpc in EVERY_RPC
        if rpc.needs is not None
        for held in Role
        if held < rpc.needs
    ]


# Public and unlisted communities may be read by anyone signed in; private ones by members.
OPEN_VISIBILITIES = [pytest.param(PUBLIC, id="public"), pytest.param(UNLISTED, id="unlisted")]
VISIBILITIES = [*OPEN_VISIBILITIES, pytest.param(PRIVATE, id="private")]


@pytest.fixture
async def running(
    rpc: Rpc, database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        rpc.service.spec,
        rpc.service.settings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as service:
        yield service


def operator(running: RunningService) -> Metadata:
    return running.auth("root", operator=True)


async def community(running: RunningService, visibility: int) -> str:
    """A new community, owned by olga, as members' CommunityCreated and MemberJoined leave it."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, "olga", Role.OWNER, visibility=visibility)
    return community_id


async def with_a_record(running: RunningService, rpc: Rpc, visibility: int) -> tuple[str, str]:
    """A new community holding one record of `rpc`'s service: (community id, record id)."""
    community_id = await community(running, visibility)
    create = rpc.service.create
    if create is not None:
        return community_id, await create(running.channel, community_id, "", operator(running))
    # Analytics has no call that writes: its figures come from events.
    async with running.deps.database.write() as session:
        await session.execute(
            rpc.service.records.insert().values(community_id=community_id, post_count=4)
        )
    return community_id, community_id


async def leave(
    running: RunningService, rpc: Rpc, community_id: str, user_id: str, *, version: int
) -> None:
    """Record that `user_id` left, as the consumer does on members' MemberLeft."""
    async with running.deps.database.write() as session:
        await upsert_newer(
            session,
            rpc.service.access.roles,
            [
                {
                    "community_id": community_id,
                    "user_id": user_id,
                    "role": int(Role.MEMBER),
                    "active": False,
                    "version": version,
                }
            ],
            ["community_id", "user_id"],
        )
    # As tests/support/access.grant does: the service may hold the standing for a few seconds.
    key = f"studyhall:{running.server.name}:standing:{community_id}:{user_id}"
    await running.deps.redis.call(lambda client: client.delete(key), None)


async def written(running: RunningService, rpc: Rpc) -> tuple[int, int]:
    """How many records and idempotency keys the service's database holds."""
    async with running.deps.database.read() as session:
        records = await session.scalar(select(func.count()).select_from(rpc.service.records))
        keys = 0
        if rpc.service.idempotency_keys is not None:
            keys = (
                await session.scalar(select(func.count()).select_from(rpc.service.idempotency_keys))
                or 0
            )
    return int(records or 0), int(keys)


async def refused(
    running: RunningService, rpc: Rpc, community_id: str, record_id: str, metadata: Metadata
) -> grpc.aio.AioRpcError:
    """Make the call, which must fail, and check it wrote nothing."""
    before = await written(running, rpc)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.call(running.channel, community_id, record_id, metadata)
    assert await written(running, rpc) == before
    return caught.value


async def allowed(
    running: RunningService, rpc: Rpc, community_id: str, record_id: str, metadata: Metadata
) -> None:
    """Make the call, which must succeed: a read finds the record, a write adds one."""
    before = await written(running, rpc)
    result = await rpc.call(running.channel, community_id, record_id, metadata)
    if rpc.writes:
        assert result
        assert await written(running, rpc) == (before[0] + 1, before[1] + 1)
    else:
        assert result == record_id


def assert_outsider_refused(error: grpc.aio.AioRpcError, rpc: Rpc, community_id: str) -> None:
    """A caller with no role in a community they can see is told what the call needs."""
    assert rpc.needs is not None
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error.details() or ""
    assert f"needs the {rpc.needs.name.lower()} role or higher" in details
    assert community_id in details
    assert details.endswith("you are not a member")


@pytest.mark.parametrize("rpc", each_rpc())
async def test_caller_without_a_token_is_unauthenticated(running: RunningService, rpc: Rpc) -> None:
    community_id, record_id = await with_a_record(running, rpc, PRIVATE)

    error = await refused(running, rpc, community_id, record_id, None)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("role_elsewhere", list(Role), ids=lambda role: role.name.lower())
@pytest.mark.parametrize("rpc", each_rpc())
async def test_staff_of_another_community_finds_no_private_community_here(
    running: RunningService, rpc: Rpc, role_elsewhere: Role
) -> None:
    community_id, record_id = await with_a_record(running, rpc, PRIVATE)
    elsewhere = await community(running, PRIVATE)
    await grant(running, elsewhere, "mallory", role_elsewhere, visibility=PRIVATE)

    error = await refused(running, rpc, community_id, record_id, running.auth("mallory"))
    assert error.code() == grpc.StatusCode.NOT_FOUND

    # Exactly the answer for a community that does not exist: existence does not leak.
    missing = str(uuid.uuid4())
    nowhere = await refused(running, rpc, missing, record_id, running.auth("mallory"))
    assert nowhere.code() == error.code()
    assert (nowhere.details() or "").replace(missing, "<id>") == (error.details() or "").replace(
        community_id, "<id>"
    )


@pytest.mark.parametrize("visibility", OPEN_VISIBILITIES)
@pytest.mark.parametrize("rpc", each_rpc())
async def test_owner_of_another_community_has_no_role_in_an_open_one(
    running: RunningService, rpc: Rpc, visibility: int
) -> None:
    community_id, record_id = await with_a_record(running, rpc, visibility)
    elsewhere = await community(running, PRIVATE)
    await grant(running, elsewhere, "mallory", Role.OWNER, visibility=PRIVATE)

    if rpc.needs is None:
        # Reading a public or unlisted community is open to anyone signed in.
        await allowed(running, rpc, community_id, record_id, running.auth("mallory"))
    else:
        error = await refused(running, rpc, community_id, record_id, running.auth("mallory"))
        assert_outsider_refused(error, rpc, community_id)


@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize(("rpc", "held"), below_what_it_needs())
async def test_member_below_the_role_a_call_needs_is_told_which_role(
    running: RunningService, rpc: Rpc, held: Role, visibility: int
) -> None:
    community_id, record_id = await with_a_record(running, rpc, visibility)
    await grant(running, community_id, "mia", held, visibility=visibility)

    error = await refused(running, rpc, community_id, record_id, running.auth("mia"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error.details() or ""
    assert rpc.needs is not None
    assert f"needs the {rpc.needs.name.lower()} role or higher" in details
    assert details.endswith(f"you are {held.name.lower()}")


@pytest.mark.parametrize("rpc", each_rpc())
async def test_member_holding_the_role_a_call_needs_may_make_it_in_a_private_community(
    running: RunningService, rpc: Rpc
) -> None:
    community_id, record_id = await with_a_record(running, rpc, PRIVATE)
    await grant(running, community_id, "mia", rpc.needs or Role.MEMBER, visibility=PRIVATE)

    await allowed(running, rpc, community_id, record_id, running.auth("mia"))


@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("rpc", each_rpc())
async def test_member_who_left_is_an_outsider_again(
    running: RunningService, rpc: Rpc, visibility: int
) -> None:
    community_id, record_id = await with_a_record(running, rpc, visibility)
    await grant(running, community_id, "lin", Role.OWNER, visibility=visibility, version=1)
    await allowed(running, rpc, community_id, record_id, running.auth("lin"))

    await leave(running, rpc, community_id, "lin", version=2)

    if visibility == PRIVATE:
        error = await refused(running, rpc, community_id, record_id, running.auth("lin"))
        assert error.code() == grpc.StatusCode.NOT_FOUND
    elif rpc.needs is None:
        await allowed(running, rpc, community_id, record_id, running.auth("lin"))
    else:
        error = await refused(running, rpc, community_id, record_id, running.auth("lin"))
        assert_outsider_refused(error, rpc, community_id)


@pytest.mark.parametrize("rpc", each_rpc())
async def test_join_arriving_after_the_leave_does_not_readmit(
    running: RunningService, rpc: Rpc
) -> None:
    community_id, record_id = await with_a_record(running, rpc, PRIVATE)
    await leave(running, rpc, community_id, "lin", version=2)
    # The older MemberJoined, delivered late.
    await grant(running, community_id, "lin", Role.OWNER, visibility=PRIVATE, version=1)

    error = await refused(running, rpc, community_id, record_id, running.auth("lin"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("rpc", each_rpc())
async def test_operator_may_act_in_a_private_community_without_belonging(
    running: RunningService, rpc: Rpc
) -> None:
    community_id, record_id = await with_a_record(running, rpc, PRIVATE)

    await allowed(running, rpc, community_id, record_id, operator(running))


@pytest.mark.parametrize("rpc", each_rpc(READS_OF_RECORDS))
async def test_member_of_two_communities_never_sees_one_from_the_other(
    running: RunningService, rpc: Rpc
) -> None:
    home, elsewhere = await community(running, PRIVATE), await community(running, PRIVATE)
    for community_id in (home, elsewhere):
        await grant(running, community_id, "ada", Role.OWNER, visibility=PRIVATE)
    assert rpc.service.create is not None
    record_id = await rpc.service.create(running.channel, home, "", running.auth("ada"))

    assert await rpc.call(running.channel, home, record_id, running.auth("ada")) == record_id
    for metadata in (running.auth("ada"), operator(running)):
        error = await refused(running, rpc, elsewhere, record_id, metadata)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert (error.details() or "").endswith(f"{record_id} not found in community {elsewhere}")


@pytest.mark.parametrize("rpc", each_rpc([READ_FIGURES]))
async def test_moderator_of_two_communities_sees_each_ones_figures_apart(
    running: RunningService, rpc: Rpc
) -> None:
    busy, record_id = await with_a_record(running, rpc, PRIVATE)
    quiet = await community(running, PRIVATE)
    for community_id in (busy, quiet):
        await grant(running, community_id, "ada", Role.MODERATOR, visibility=PRIVATE)

    assert await rpc.call(running.channel, busy, record_id, running.auth("ada")) == busy
    reply = await analytics_grpc.AnalyticsServiceStub(running.channel).GetCommunityStats(
        analytics_pb.GetCommunityStatsRequest(community_id=quiet), metadata=running.auth("ada")
    )
    assert reply.stats == analytics_pb.CommunityStats(community_id=quiet)
