"""Members' reports about a post reach content's review queue through the bus, and members'
decisions act on the post: a member reports a post in members, it waits in content's queue
as reported; a moderator resolves the report in members with the content removed, and
content removes the post; its author appeals in members, the owner overturns, and the post
is back (docs/decisions/0054)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.content.app import SPEC as CONTENT
from services.content.settings import ContentSettings
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.content.v1 import content_service_pb2_grpc as content_grpc
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service


@pytest.fixture
async def services(
    database_url: str, second_database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[tuple[RunningService, RunningService]]:
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "data_dir": data_dir}
    async with (
        running_service(MEMBERS, MembersSettings, database_url=database_url, **common) as members,
        running_service(
            CONTENT, ContentSettings, database_url=second_database_url, **common
        ) as content,
    ):
        yield members, content


async def test_a_report_resolved_with_removal_removes_the_post_and_an_overturn_brings_it_back(
    services: tuple[RunningService, RunningService],
) -> None:
    members, content = services
    club = members_grpc.MembersServiceStub(members.channel)
    posts = content_grpc.ContentServiceStub(content.channel)
    community = (
        await club.CreateCommunity(
            members_pb.CreateCommunityRequest(name=f"Reports {uuid.uuid4().hex[:6]}", topic="t"),
            metadata=members.auth("olga"),
        )
    ).community
    for user in ("arno", "rita", "mo"):
        await club.JoinCommunity(
            members_pb.JoinCommunityRequest(community_id=community.id),
            metadata=members.auth(user),
        )
    await club.ChangeRole(
        members_pb.ChangeRoleRequest(
            community_id=community.id, user_id="mo", role=members_pb.ROLE_MODERATOR
        ),
        metadata=members.auth("olga"),
    )

    written: list[content_pb.Post] = []

    async def write() -> bool:
        try:
            reply = await posts.CreatePost(
                content_pb.CreatePostRequest(
                    community_id=community.id,
                    kind=content_pb.POST_KIND_ARTICLE,
                    title="Cheap essays, message me",
                    body="Any subject.",
                ),
                metadata=content.auth("arno"),
            )
        except grpc.aio.AioRpcError:
            return False
        written.append(reply.post)
        return True

    await eventually(write, "arno, a member in content, posts")
    post = written[0]

    filed: list[members_pb.Report] = []

    async def report() -> bool:
        try:
            reply = await club.FileReport(
                members_pb.FileReportRequest(
                    community_id=community.id,
                    target=members_pb.ContentRef(service="content", kind="post", id=post.id),
                    reason=members_pb.REPORT_REASON_SPAM,
                ),
                metadata=members.auth("rita"),
            )
        except grpc.aio.AioRpcError:
            return False  # members has not learned of the post yet
        filed.append(reply.report)
        return True

    await eventually(report, "rita reports the post once members knows it")
    report_id = filed[0].report_id

    async def queue() -> list[content_pb.ModerationCase]:
        try:
            reply = await posts.ListReviewQueue(
                content_pb.ListReviewQueueRequest(
                    community_id=community.id, reason=content_pb.REVIEW_REASON_REPORTED
                ),
                metadata=content.auth("mo"),
            )
        except grpc.aio.AioRpcError:
            return []  # mo is not a moderator in content yet
        return list(reply.cases)

    async def reported() -> bool:
        return [(case.target_id, list(case.report_ids)) for case in await queue()] == [
            (post.id, [report_id])
        ]

    await eventually(reported, "the reported post waits in content's queue")
    [case] = await queue()
    assert list(case.report_reasons) == ["REPORT_REASON_SPAM"]

    async def state() -> Any:
        reply = await posts.GetPost(
            content_pb.GetPostRequest(community_id=community.id, post_id=post.id),
            metadata=content.auth("arno"),
        )
        return reply.post.state

    await club.ResolveReport(
        members_pb.ResolveReportRequest(
            community_id=community.id,
            report_id=report_id,
            resolution=members_pb.RESOLUTION_WARN,
            note="Selling essays",
            remove_content=True,
        ),
        metadata=members.auth("mo"),
    )

    async def removed() -> bool:
        return bool(await state() == content_pb.POST_STATE_REMOVED and not await queue())

    await eventually(removed, "content removes the post and closes the report")
    log = await posts.ListModerationLog(
        content_pb.ListModerationLogRequest(community_id=community.id),
        metadata=content.auth("mo"),
    )
    assert [(e.action, e.actor_user_id, e.reason) for e in log.entries] == [
        ("remove", "mo", f"report {report_id}")
    ]

    await club.AppealReport(
        members_pb.AppealReportRequest(
            community_id=community.id, report_id=report_id, statement="It was a joke."
        ),
        metadata=members.auth("arno"),
    )
    await club.ResolveReport(
        members_pb.ResolveReportRequest(
            community_id=community.id,
            report_id=report_id,
            resolution=members_pb.RESOLUTION_OVERTURN,
            note="A joke, fine",
        ),
        metadata=members.auth("olga"),
    )

    async def back() -> bool:
        return bool(await state() == content_pb.POST_STATE_PUBLISHED)

    await eventually(back, "the overturn puts the post back")
