"""A consumer written with only nats-py, the CloudEvents spec and proto/ can read every event:
this one compiles proto/ itself and never imports Studyhall's code to decode."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc_tools
import nats
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

from services.kit.events.connection import servers
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service

PROTO = Path(__file__).parents[2] / "proto"


def _pool_from_proto(tmp_path: Path) -> descriptor_pool.DescriptorPool:
    output = tmp_path / "contracts.binpb"
    files = [str(path.relative_to(PROTO)) for path in PROTO.rglob("*.proto")]
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    assert (
        protoc.main(
            [
                "protoc",
                f"-I{PROTO}",
                f"-I{well_known}",
                "--include_imports",
                f"--descriptor_set_out={output}",
                *files,
            ]
        )
        == 0
    )
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in descriptors.file:
        pool.Add(file)
    return pool


@pytest.fixture
async def members(
    tmp_path: Path, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        MEMBERS,
        MembersSettings,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'members.db'}",
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running


async def test_a_plain_nats_client_reads_every_event(
    members: RunningService, nats_url: str, tmp_path: Path
) -> None:
    stub = members_grpc.MembersServiceStub(members.channel)
    created = await stub.CreateCommunity(
        members_pb.CreateCommunityRequest(name=f"Open {uuid.uuid4().hex[:6]}", topic="reading"),
        metadata=members.auth("owner"),
    )
    community_id = created.community.id
    await stub.JoinCommunity(
        members_pb.JoinCommunityRequest(community_id=community_id), metadata=members.auth("lin")
    )
    await stub.LeaveCommunity(
        members_pb.LeaveCommunityRequest(community_id=community_id), metadata=members.auth("lin")
    )
    pool = _pool_from_proto(tmp_path)

    client = await nats.connect(servers(nats_url))
    try:
        js = client.jetstream()
        # One community, every event type: the subject scheme puts the community third.
        subscription = await js.subscribe(
            f"studyhall.members.{community_id}.>", ordered_consumer=True
        )
        received: list[tuple[str, dict[str, str], Any]] = []
        while len(received) < 4:
            msg = await subscription.next_msg(timeout=10)
            headers = msg.headers or {}
            message_class = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(headers["ce-type"])
            )
            received.append((msg.subject, headers, message_class.FromString(msg.data)))
        await subscription.unsubscribe()
    finally:
        await client.close()

    types = [headers["ce-type"] for _, headers, _ in received]
    assert types == [
        "studyhall.members.v1.CommunityCreated",
        "studyhall.members.v1.MemberJoined",
        "studyhall.members.v1.MemberJoined",
        "studyhall.members.v1.MemberLeft",
    ]
    for subject, headers, event in received:
        assert headers["ce-specversion"] == "1.0"
        assert str(uuid.UUID(headers["ce-id"])) == headers["ce-id"]
        assert headers["Nats-Msg-Id"] == headers["ce-id"]
        assert headers["ce-source"] == "/studyhall/members"
        assert headers["ce-communityid"] == community_id
        assert headers["content-type"] == "application/protobuf"
        assert headers["ce-subject"].startswith(f"communities/{community_id}")
        assert datetime.fromisoformat(headers["ce-time"].replace("Z", "+00:00")).tzinfo is not None
        # Present whenever the producer traces (always in a deployed service).
        assert headers.get("traceparent", "00-").startswith("00-")
        assert subject == f"studyhall.members.{community_id}.{headers['ce-type'].rsplit('.', 1)[1]}"
        assert event.community_id == community_id
    joined_by_lin = received[2][2]
    left_by_lin = received[3][2]
    assert (joined_by_lin.user_id, joined_by_lin.version) == ("lin", 1)
    assert (left_by_lin.user_id, left_by_lin.version) == ("lin", 2)
