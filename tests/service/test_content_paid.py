"""Paid content: a post or a path can need an entitlement to a product. Content keeps its own
projection of billing's EntitlementGranted / EntitlementRevoked (published on the real bus
here), newest version wins whatever the order, `end_time` authoritative; a reader without
access sees the title and summary in the feeds and is refused the body; authors and
moderators read it all."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import nats
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from sqlalchemy import select

from services.content.app import SPEC
from services.content.settings import ContentSettings
from services.content.store.tables import inbox, metadata
from services.kit.access import Role
from services.kit.events.connection import servers
from services.kit.events.envelope import Envelope, event_subject, new_event_id
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream
from studyhall.billing.v1 import billing_events_pb2 as billing_events
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.catalogue import changed_tables, snapshot
from tests.support.errors import field_violations
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

COURSE = "prod-ielts-course"


@pytest.fixture
async def content_with_consumers(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    """Content reading billing's stream (its consumers run in the process)."""
    async with running_service(
        SPEC,
        ContentSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
        relay="external",
    ) as running:
        yield running


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(servers(nats_url))
    context = client.jetstream()
    await ensure_stream(context, service_stream("billing", StreamLimits()))
    try:
        yield context
    finally:
        await client.close()


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class Billing:
    """Billing's facts about one community, as the billing service publishes them."""

    def __init__(self, js: JetStreamContext, content: RunningService, community_id: str) -> None:
        self.js = js
        self.content = content
        self.community_id = community_id

    async def publish(
        self,
        kind: type[billing_events.EntitlementGranted] | type[billing_events.EntitlementRevoked],
        entitlement_id: str,
        user_id: str,
        version: int,
        end: datetime | None = None,
    ) -> str:
        event = kind(
            entitlement_id=entitlement_id,
            community_id=self.community_id,
            user_id=user_id,
            product_id=COURSE,
            start_time=_at(datetime.now(UTC) - timedelta(days=1)),
            version=version,
        )
        if end is not None:
            event.end_time.CopyFrom(_at(end))
        envelope = Envelope(
            id=new_event_id(),
            source="/studyhall/billing",
            type=event.DESCRIPTOR.full_name,
            time=datetime.now(UTC),
            subject=f"communities/{self.community_id}/entitlements/{entitlement_id}",
            community_id=self.community_id,
            data=event.SerializeToString(),
        )
        name = event.DESCRIPTOR.name
        await self.js.publish(
            event_subject("billing", self.community_id, name),
            envelope.data,
            headers=envelope.headers(),
        )
        return envelope.id

    async def applied(self, *event_ids: str) -> None:
        """Wait until content's consumer has taken the events (its inbox holds them)."""

        async def taken() -> bool:
            async with self.content.deps.database.read() as session:
                found = await session.scalars(
                    select(inbox.c.event_id).where(inbox.c.event_id.in_(event_ids))
                )
                return len(found.all()) == len(event_ids)

        await eventually(taken, f"content takes billing's events {event_ids}")


async def test_a_paid_post_is_refused_before_the_entitlement_and_readable_after_it(
    content_with_consumers: RunningService, js: JetStreamContext
) -> None:
    content = content_with_consumers
    community_id = str(uuid.uuid4())
    for user, role in (("ada", Role.MEMBER), ("ben", Role.MEMBER), ("cy", Role.MEMBER)):
        await grant(content, community_id, user, role)
    await grant(content, community_id, "mo", Role.MODERATOR)
    stub = pb_grpc.ContentServiceStub(content.channel)
    billing = Billing(js, content, community_id)
    created = await stub.CreatePost(
        pb.CreatePostRequest(
            community_id=community_id,
            kind=pb.POST_KIND_ARTICLE,
            title="Band 7 writing, lesson 1",
            summary="Task 2 structure in four paragraphs",
            body="The full lesson: introduction, two body paragraphs, conclusion.",
        ),
        metadata=content.auth("ada"),
    )
    post_id = created.post.id
    priced = await stub.SetPostProduct(
        pb.SetPostProductRequest(community_id=community_id, post_id=post_id, product_id=COURSE),
        metadata=content.auth("ada"),
    )
    assert priced.post.required_product_id == COURSE
    assert priced.post.body  # its author reads it

    async def read(user: str) -> pb.Post:
        reply = await stub.GetPost(
            pb.GetPostRequest(community_id=community_id, post_id=post_id),
            metadata=content.auth(user),
        )
        post: pb.Post = reply.post
        return post

    async def refused(user: str) -> bool:
        try:
            await read(user)
        except grpc.aio.AioRpcError as error:
            problem = (error.code(), COURSE in (error.details() or ""))
            if problem != (grpc.StatusCode.PERMISSION_DENIED, True):
                raise
            return True
        return False

    async def feed(user: str) -> pb.Post:
        reply = await stub.ListPosts(
            pb.ListPostsRequest(community_id=community_id), metadata=content.auth(user)
        )
        [post] = reply.posts
        shown: pb.Post = post
        return shown

    assert await refused("ben")
    shown = await feed("ben")
    assert (shown.title, shown.summary) == (created.post.title, created.post.summary)
    assert (shown.body, shown.locked, shown.required_product_id) == ("", True, COURSE)
    assert (await read("mo")).body == created.post.body  # moderators read it all

    granted = await billing.publish(billing_events.EntitlementGranted, "ent-ben", "ben", 1)

    async def readable() -> bool:
        return not await refused("ben")

    await eventually(readable, "the entitlement reaches content over the bus")
    assert (await read("ben")).body == created.post.body
    assert not (await feed("ben")).locked
    await billing.applied(granted)

    # Revoked (version 3), then the grant's version 2 arrives late: the newest wins.
    revoked = await billing.publish(
        billing_events.EntitlementRevoked, "ent-ben", "ben", 3, end=datetime.now(UTC)
    )
    late = await billing.publish(billing_events.EntitlementGranted, "ent-ben", "ben", 2)
    await billing.applied(revoked, late)
    assert await refused("ben")
    assert (await feed("ben")).body == ""

    # An entitlement whose end has passed gives nothing, with no revocation ever sent.
    expired = await billing.publish(
        billing_events.EntitlementGranted,
        "ent-cy",
        "cy",
        1,
        end=datetime.now(UTC) - timedelta(minutes=1),
    )
    await billing.applied(expired)
    assert await refused("cy")

    # A paid path: enrolling needs the entitlement too.
    path = await stub.CreatePath(
        pb.CreatePathRequest(
            community_id=community_id,
            path=pb.LearningPath(
                title="IELTS writing",
                required_product_id=COURSE,
                steps=[pb.PathStep(kind=pb.PATH_STEP_KIND_POST, post_id=post_id)],
            ),
        ),
        metadata=content.auth("olga", operator=True),
    )
    with pytest.raises(grpc.aio.AioRpcError) as unpaid:
        await stub.EnrollInPath(
            pb.EnrollInPathRequest(community_id=community_id, path_id=path.path.id),
            metadata=content.auth("cy"),
        )
    assert unpaid.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await billing.applied(
        await billing.publish(billing_events.EntitlementGranted, "ent-cy", "cy", 2)
    )
    enrolled = await stub.EnrollInPath(
        pb.EnrollInPathRequest(community_id=community_id, path_id=path.path.id),
        metadata=content.auth("cy"),
    )
    assert enrolled.progress.enrolled

    # Free again.
    await stub.SetPostProduct(
        pb.SetPostProductRequest(community_id=community_id, post_id=post_id),
        metadata=content.auth("ada"),
    )
    assert (await read("ben")).body == created.post.body


async def test_only_the_author_prices_a_post_and_bad_input_writes_nothing(
    content: RunningService,
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "ada", Role.MEMBER)
    await grant(content, community_id, "ben", Role.ADMIN)
    stub = pb_grpc.ContentServiceStub(content.channel)
    created = await stub.CreatePost(
        pb.CreatePostRequest(
            community_id=community_id, kind=pb.POST_KIND_ARTICLE, title="Lesson", body="Text"
        ),
        metadata=content.auth("ada"),
    )
    before = await snapshot(content, metadata)
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await stub.SetPostProduct(
            pb.SetPostProductRequest(
                community_id=community_id, post_id=created.post.id, product_id=COURSE
            ),
            metadata=content.auth("ben"),
        )
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as spaced:
        await stub.SetPostProduct(
            pb.SetPostProductRequest(
                community_id=community_id, post_id=created.post.id, product_id=" course"
            ),
            metadata=content.auth("ada"),
        )
    assert "product_id" in field_violations(spaced.value)
    with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
        await stub.SetPostProduct(
            pb.SetPostProductRequest(
                community_id=str(uuid.uuid4()), post_id=created.post.id, product_id=COURSE
            ),
            metadata=content.auth("ada", operator=True),
        )
    assert elsewhere.value.code() == grpc.StatusCode.NOT_FOUND
    assert changed_tables(before, await snapshot(content, metadata)) == []
