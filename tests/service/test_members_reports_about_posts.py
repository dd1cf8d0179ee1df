"""A report about a post is resolved against facts: the post must be one of the community's,
as content's PostCreated facts (published on the real bus here) told members, and its author
is the one those facts name, whoever the reporter says wrote it; a mute decided on the
report acts on that author (docs/decisions/0020-reports-resolved-against-facts.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import nats
import pytest
from nats.js import JetStreamContext
from sqlalchemy import select

from services.kit.events.connection import servers
from services.kit.events.envelope import Envelope, event_subject, new_event_id
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream
from services.members.store.tables import known_posts, outbox, reports
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.members.v1 import members_events_pb2 as members_events
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(servers(nats_url))
    context = client.jetstream()
    await ensure_stream(context, service_stream("content", StreamLimits()))
    try:
        yield context
    finally:
        await client.close()


async def publish_post(js: JetStreamContext, community_id: str, author: str) -> str:
    """A PostCreated as the content service publishes it; the new post's id."""
    post_id = str(uuid.uuid4())
    event = content_events.PostCreated(
        community_id=community_id,
        post_id=post_id,
        author_user_id=author,
        version=1,
    )
    envelope = Envelope(
        id=new_event_id(),
        source="/studyhall/content",
        type=event.DESCRIPTOR.full_name,
        time=datetime.now(UTC),
        subject=f"communities/{community_id}/posts/{post_id}",
        community_id=community_id,
        data=event.SerializeToString(),
    )
    subject = event_subject("content", community_id, "PostCreated")
    await js.publish(subject, envelope.data, headers=envelope.headers())
    return post_id


async def known(members: RunningService, *post_ids: str) -> None:
    """Wait until members' consumer has recorded the posts."""
    query = select(known_posts.c.post_id).where(known_posts.c.post_id.in_(post_ids))
    for _ in range(300):
        async with members.deps.database.read() as session:
            if len((await session.scalars(query)).all()) == len(post_ids):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"members never learned of posts {post_ids}")


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_a_post_report_acts_on_the_author_content_names_and_stays_in_its_community(
    members: RunningService, js: JetStreamContext
) -> None:
    stub = pb_grpc.MembersServiceStub(members.channel)
    owner = members.auth("olga")

    async def community(name: str, *people: str) -> str:
        created = await stub.CreateCommunity(
            pb.CreateCommunityRequest(name=f"{name} {uuid.uuid4().hex[:6]}", topic="t"),
            metadata=owner,
        )
        for person in people:
            await stub.JoinCommunity(
                pb.JoinCommunityRequest(community_id=created.community.id),
                metadata=members.auth(person),
            )
        return str(created.community.id)

    hall = await community("Hall", "rita", "arno", "ivan")
    other = await community("Other", "bert")
    post = await publish_post(js, hall, "arno")
    elsewhere = await publish_post(js, other, "bert")
    await known(members, post, elsewhere)

    def about(post_id: str, *, named_author: str = "", kind: str = "post") -> pb.FileReportRequest:
        return pb.FileReportRequest(
            community_id=hall,
            target=pb.ContentRef(
                service="content", kind=kind, id=post_id, author_user_id=named_author
            ),
            reason=pb.REPORT_REASON_SPAM,
        )

    # The reporter names an innocent member as the author: the facts decide, not the report.
    filed = await stub.FileReport(about(post, named_author="ivan"), metadata=members.auth("rita"))
    assert filed.report.target.author_user_id == "arno"
    resolved = await stub.ResolveReport(
        pb.ResolveReportRequest(
            community_id=hall,
            report_id=filed.report.report_id,
            resolution=pb.RESOLUTION_MUTE,
            note="spam links",
        ),
        metadata=owner,
    )
    assert resolved.membership.user_id == "arno"
    assert resolved.membership.HasField("muted_until")

    # Refusals change nothing: another community's post is as unknown as one never
    # published (and says a new post is worth a retry); only posts are reportable as
    # content yet; nobody reports their own post.
    before = await reports_in(members, hall)
    for post_id in (elsewhere, str(uuid.uuid4())):
        missing = await refused(stub.FileReport(about(post_id), metadata=members.auth("rita")))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        assert "retry" in (missing.details() or "")
    comment = await refused(
        stub.FileReport(about(post, kind="comment"), metadata=members.auth("rita"))
    )
    assert comment.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target.kind" in field_violations(comment)
    own = await refused(stub.FileReport(about(post), metadata=members.auth("arno")))
    assert own.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target.id" in field_violations(own)
    assert await reports_in(members, hall) == before

    # Once the author's data is erased, their post stays the community's under no author:
    # a report about it can be filed and dismissed, but acts on nobody.
    await stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=hall, confirm=True), metadata=members.auth("arno")
    )
    anonymous = await stub.FileReport(about(post), metadata=members.auth("ivan"))
    assert anonymous.report.target.author_user_id == ""
    mute = await refused(
        stub.ResolveReport(
            pb.ResolveReportRequest(
                community_id=hall,
                report_id=anonymous.report.report_id,
                resolution=pb.RESOLUTION_MUTE,
                note="spam",
            ),
            metadata=owner,
        )
    )
    assert mute.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Removing the content is still a decision to take: it acts on the post alone.
    removed = await stub.ResolveReport(
        pb.ResolveReportRequest(
            community_id=hall,
            report_id=anonymous.report.report_id,
            resolution=pb.RESOLUTION_WARN,
            note="spam",
            remove_content=True,
        ),
        metadata=owner,
    )
    assert removed.report.decision.remove_content
    assert not removed.HasField("membership")


async def reports_in(members: RunningService, community_id: str) -> list[str]:
    async with members.deps.database.read() as session:
        found = await session.scalars(
            select(reports.c.id).where(reports.c.community_id == community_id)
        )
        return sorted(found)


async def test_a_decision_may_remove_the_post_and_the_facts_say_which_and_so_does_its_appeal(
    members: RunningService, js: JetStreamContext
) -> None:
    stub = pb_grpc.MembersServiceStub(members.channel)
    owner = members.auth("olga")
    created = await stub.CreateCommunity(
        pb.CreateCommunityRequest(name=f"Hall {uuid.uuid4().hex[:6]}", topic="t"), metadata=owner
    )
    hall = created.community.id
    for person in ("rita", "arno", "adam", "mo"):
        await stub.JoinCommunity(
            pb.JoinCommunityRequest(community_id=hall), metadata=members.auth(person)
        )
    for person, role in (("adam", pb.ROLE_ADMIN), ("mo", pb.ROLE_MODERATOR)):
        await stub.ChangeRole(
            pb.ChangeRoleRequest(community_id=hall, user_id=person, role=role), metadata=owner
        )
    post = await publish_post(js, hall, "arno")
    await known(members, post)
    about_post = await stub.FileReport(
        pb.FileReportRequest(
            community_id=hall,
            target=pb.ContentRef(service="content", kind="post", id=post),
            reason=pb.REPORT_REASON_SPAM,
        ),
        metadata=members.auth("rita"),
    )
    about_member = await stub.FileReport(
        pb.FileReportRequest(
            community_id=hall, target_user_id="arno", reason=pb.REPORT_REASON_HARASSMENT
        ),
        metadata=members.auth("rita"),
    )

    def resolve(report_id: str, resolution: int, **fields: object) -> pb.ResolveReportRequest:
        return pb.ResolveReportRequest(
            community_id=hall,
            report_id=report_id,
            resolution=resolution,  # type: ignore[arg-type]
            note="spam links",
            **fields,  # type: ignore[arg-type]
        )

    before = await reports_in(members, hall)
    for request in (
        resolve(about_post.report.report_id, pb.RESOLUTION_DISMISS, remove_content=True),
        resolve(about_member.report.report_id, pb.RESOLUTION_WARN, remove_content=True),
    ):
        wrong = await refused(stub.ResolveReport(request, metadata=members.auth("mo")))
        assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "remove_content" in field_violations(wrong)
    assert await reports_in(members, hall) == before

    decided = await stub.ResolveReport(
        resolve(about_post.report.report_id, pb.RESOLUTION_WARN, remove_content=True),
        metadata=members.auth("mo"),
    )
    assert decided.report.decision.remove_content
    await stub.AppealReport(
        pb.AppealReportRequest(
            community_id=hall, report_id=about_post.report.report_id, statement="not spam"
        ),
        metadata=members.auth("arno"),
    )
    again = await refused(
        stub.ResolveReport(
            resolve(about_post.report.report_id, pb.RESOLUTION_OVERTURN, remove_content=True),
            metadata=members.auth("adam"),
        )
    )
    assert "remove_content" in field_violations(again)
    await stub.ResolveReport(
        resolve(about_post.report.report_id, pb.RESOLUTION_OVERTURN), metadata=members.auth("adam")
    )

    facts = await resolved_facts(members, hall)
    assert [(f.appeal, f.resolution, f.remove_content) for f in facts] == [
        (False, pb.RESOLUTION_WARN, True),
        (True, pb.RESOLUTION_OVERTURN, True),
    ]
    assert {(f.target_service, f.target_kind, f.target_id) for f in facts} == {
        ("content", "post", post)
    }


async def resolved_facts(
    members: RunningService, community_id: str
) -> list[members_events.ReportResolved]:
    """The ReportResolved facts in members' outbox, in the order they were written."""
    async with members.deps.database.read() as session:
        rows = await session.scalars(
            select(outbox.c.payload)
            .where(
                outbox.c.community_id == community_id,
                outbox.c.event_type == members_events.ReportResolved.DESCRIPTOR.full_name,
            )
            .order_by(outbox.c.seq)
        )
        return [members_events.ReportResolved.FromString(payload) for payload in rows]
