"""An accepted answer earns its author points in members through the backbone: a member
asks in content, another answers, the asker accepts (AnswerAccepted: +5 in members) and
withdraws it (AnswerUnaccepted: the 5 points go again)."""

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
from studyhall.members.v1 import recognition_service_pb2 as recognition_pb
from studyhall.members.v1 import recognition_service_pb2_grpc as recognition_grpc
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


async def test_an_accepted_answer_earns_its_author_points_and_withdrawing_takes_them_back(
    services: tuple[RunningService, RunningService],
) -> None:
    members, content = services
    club = members_grpc.MembersServiceStub(members.channel)
    recognition = recognition_grpc.RecognitionServiceStub(members.channel)
    posts = content_grpc.ContentServiceStub(content.channel)
    community = (
        await club.CreateCommunity(
            members_pb.CreateCommunityRequest(name=f"Answers {uuid.uuid4().hex[:6]}", topic="t"),
            metadata=members.auth("owner"),
        )
    ).community
    for user in ("asker", "helper"):
        await club.JoinCommunity(
            members_pb.JoinCommunityRequest(community_id=community.id),
            metadata=members.auth(user),
        )

    asked: list[content_pb.Post] = []
    answered: list[content_pb.Comment] = []

    async def ask() -> bool:
        try:
            reply = await posts.CreatePost(
                content_pb.CreatePostRequest(
                    community_id=community.id,
                    kind=content_pb.POST_KIND_QUESTION,
                    title="How do I keep a study streak on weekends?",
                    body="I always miss Saturdays.",
                ),
                metadata=content.auth("asker"),
            )
        except grpc.aio.AioRpcError:
            return False
        asked.append(reply.post)
        return True

    async def answer() -> bool:
        try:
            reply = await posts.AddComment(
                content_pb.AddCommentRequest(
                    community_id=community.id,
                    post_id=asked[0].id,
                    body="Plan a short review for Saturday morning, before anything else.",
                ),
                metadata=content.auth("helper"),
            )
        except grpc.aio.AioRpcError:
            return False
        answered.append(reply.comment)
        return True

    async def points() -> int:
        reply: recognition_pb.GetStandingResponse = await recognition.GetStanding(
            recognition_pb.GetStandingRequest(community_id=community.id, user_id="helper"),
            metadata=members.auth("helper"),
        )
        return int(reply.standing.points_total)

    async def points_are(expected: int) -> bool:
        return await points() == expected

    await eventually(ask, "the asker, a member in content, asks")
    await eventually(answer, "the helper, a member in content, answers")
    assert answered[0].is_answer
    before = await points()

    accepted = await posts.AcceptAnswer(
        content_pb.AcceptAnswerRequest(
            community_id=community.id, question_id=asked[0].id, answer_id=answered[0].id
        ),
        metadata=content.auth("asker"),
    )
    assert accepted.question.accepted_answer_id == answered[0].id
    await eventually(lambda: points_are(before + 5), "the helper earns 5 points")

    await posts.UnacceptAnswer(
        content_pb.UnacceptAnswerRequest(community_id=community.id, question_id=asked[0].id),
        metadata=content.auth("asker"),
    )
    await eventually(lambda: points_are(before), "the 5 points are taken back")
