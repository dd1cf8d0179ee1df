"""Rate limits per caller and per community, kept in a real Redis: a call over a limit is
RESOURCE_EXHAUSTED with the delay to wait (google.rpc.RetryInfo) and the limit it hit
(google.rpc.QuotaFailure); other callers and communities go on; with Redis down every call
is admitted and the fallback is counted (docs/decisions/0022-rate-limits.md).

Limits here are per minute and each test uses its own user and community ids, so nothing
depends on how fast the calls go, and the run's shared Redis carries nothing over.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.kit.auth import LocalSigner
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support.services import RunningService, free_port, running_service

pytestmark = pytest.mark.service

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def _limited(
    tmp_path: Path, redis_url: str, nats_url: str, data_dir: Path, **limits: str
) -> AbstractAsyncContextManager[RunningService]:
    return running_service(
        MEMBERS,
        MembersSettings,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'members.db'}",
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
        relay="external",
        consumers="external",
        care_sweep_seconds=0,
        **limits,
    )


async def _two_communities(members: RunningService, owner: str) -> list[pb.Community]:
    stub = pb_grpc.MembersServiceStub(members.channel)
    return [
        (
            await stub.CreateCommunity(
                pb.CreateCommunityRequest(name=f"Hall {uuid.uuid4().hex[:6]}", topic="t"),
                metadata=members.auth(owner),
            )
        ).community
        for _ in range(2)
    ]


def _refusal(error: grpc.aio.AioRpcError) -> tuple[float, str, str]:
    """(retry delay in seconds, quota subject, its description) of a RESOURCE_EXHAUSTED."""
    assert error.code() == EXHAUSTED, error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    retry, quota = error_details_pb2.RetryInfo(), error_details_pb2.QuotaFailure()
    assert status.details[0].Unpack(retry)
    assert status.details[1].Unpack(quota)
    (violation,) = quota.violations
    return retry.retry_delay.ToNanoseconds() / 1e9, violation.subject, violation.description


async def test_a_caller_over_the_limit_is_refused_with_the_delay_to_wait(
    tmp_path: Path, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    async with _limited(
        tmp_path, redis_url, nats_url, data_dir, rate_limit_per_caller="5/minute"
    ) as members:
        stub = pb_grpc.MembersServiceStub(members.channel)
        greedy, other = f"greedy-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
        listing = pb.ListCommunitiesRequest(page_size=5)
        for _ in range(5):
            await stub.ListCommunities(listing, metadata=members.auth(greedy))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListCommunities(listing, metadata=members.auth(greedy))
        delay, subject, description = _refusal(caught.value)
        assert 0 < delay <= 60
        assert subject == f"caller:{greedy}"
        assert description == "at most 5 per minute"
        assert "retry" in (caught.value.details() or "")
        # Every call counts, a malformed one too: it is refused the same.
        raw = members.channel.unary_unary(
            "/studyhall.members.v1.MembersService/ListCommunities",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.aio.AioRpcError) as garbage:
            await raw(b"\xff\xff\xff", metadata=members.auth(greedy))
        assert garbage.value.code() == EXHAUSTED
        # Others are not held back, and health needs neither a token nor a budget.
        await stub.ListCommunities(listing, metadata=members.auth(other))
        health = health_pb2_grpc.HealthStub(members.channel)
        for _ in range(10):
            await health.Check(health_pb2.HealthCheckRequest())


async def test_a_community_over_its_limit_is_refused_whoever_calls(
    tmp_path: Path, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    async with _limited(
        tmp_path, redis_url, nats_url, data_dir, rate_limit_per_community="4/minute"
    ) as members:
        stub = pb_grpc.MembersServiceStub(members.channel)
        owner = f"owner-{uuid.uuid4().hex[:8]}"
        # Creating names no community yet: it counts against none.
        busy, quiet = await _two_communities(members, owner)
        for number in range(4):
            await stub.GetCommunity(
                pb.GetCommunityRequest(community_id=busy.id),
                metadata=members.auth(f"reader-{number}-{uuid.uuid4().hex[:6]}"),
            )
        # A fifth call, by someone new, and a change that names the community inside its
        # record (UpdateCommunity's community.id): both over the community's limit.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCommunity(
                pb.GetCommunityRequest(community_id=busy.id),
                metadata=members.auth(f"late-{uuid.uuid4().hex[:6]}"),
            )
        delay, subject, _ = _refusal(caught.value)
        assert 0 < delay <= 60
        assert subject == f"community:{busy.id}"
        with pytest.raises(grpc.aio.AioRpcError) as update:
            await stub.UpdateCommunity(
                pb.UpdateCommunityRequest(
                    community=pb.Community(id=busy.id, topic="other"),
                    update_mask=FieldMask(paths=["topic"]),
                ),
                metadata=members.auth(owner),
            )
        assert _refusal(update.value)[1] == f"community:{busy.id}"
        got = await stub.GetCommunity(
            pb.GetCommunityRequest(community_id=quiet.id), metadata=members.auth(owner)
        )
        assert got.community.id == quiet.id


async def test_a_call_one_limit_refuses_uses_up_no_other(
    tmp_path: Path, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    async with _limited(
        tmp_path,
        redis_url,
        nats_url,
        data_dir,
        rate_limit_per_caller="3/minute",
        rate_limit_per_community="2/minute",
    ) as members:
        stub = pb_grpc.MembersServiceStub(members.channel)
        owner, reader = (f"{who}-{uuid.uuid4().hex[:8]}" for who in ("owner", "reader"))
        busy, quiet = await _two_communities(members, owner)
        for _ in range(2):
            await stub.GetCommunity(
                pb.GetCommunityRequest(community_id=busy.id), metadata=members.auth(reader)
            )
        # The community's limit refuses the third: the reader's own budget keeps that call.
        with pytest.raises(grpc.aio.AioRpcError) as community:
            await stub.GetCommunity(
                pb.GetCommunityRequest(community_id=busy.id), metadata=members.auth(reader)
            )
        assert _refusal(community.value)[1] == f"community:{busy.id}"
        await stub.GetCommunity(
            pb.GetCommunityRequest(community_id=quiet.id), metadata=members.auth(reader)
        )
        # Three calls admitted: now the caller's limit refuses, and the quiet community's
        # budget keeps that call.
        with pytest.raises(grpc.aio.AioRpcError) as caller:
            await stub.GetCommunity(
                pb.GetCommunityRequest(community_id=quiet.id), metadata=members.auth(reader)
            )
        assert _refusal(caller.value)[1] == f"caller:{reader}"
        await stub.GetCommunity(
            pb.GetCommunityRequest(community_id=quiet.id),
            metadata=members.auth(f"next-{uuid.uuid4().hex[:6]}"),
        )


def test_with_redis_down_every_call_is_admitted_and_counted(data_dir: Path, nats_url: str) -> None:
    """A members process whose Redis does not answer (nothing listens on its port): a limit
    of 2 calls a minute admits 6, and each shows in the degraded-calls metric that
    StudyhallRedisDegraded alerts on."""
    grpc_port, metrics_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("STUDYHALL_")}
    env.update(
        STUDYHALL_DATA_DIR=str(data_dir),
        STUDYHALL_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        STUDYHALL_NATS_URL=nats_url,
        STUDYHALL_RELAY="external",
        STUDYHALL_CONSUMERS="external",
        STUDYHALL_MEMBERS_CARE_SWEEP_SECONDS="0",
        STUDYHALL_MEMBERS_GRPC_PORT=str(grpc_port),
        STUDYHALL_MEMBERS_METRICS_PORT=str(metrics_port),
        STUDYHALL_RATE_LIMIT_PER_CALLER="2/minute",
        STUDYHALL_RATE_LIMIT_PER_COMMUNITY="2/minute",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "services.members"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        token = LocalSigner.ensure(data_dir).mint("steady")
        metadata = [("authorization", f"Bearer {token}")]
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            _wait_serving(channel, process)
            stub = pb_grpc.MembersServiceStub(channel)
            created = stub.CreateCommunity(
                pb.CreateCommunityRequest(name="Unlimited", topic="t"), metadata=metadata
            )
            for _ in range(5):
                stub.GetCommunity(
                    pb.GetCommunityRequest(community_id=created.community.id), metadata=metadata
                )
        scraped = (
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            .read()
            .decode()
        )
        degraded = [
            float(line.rsplit(" ", 1)[1])
            for line in scraped.splitlines()
            if line.startswith("studyhall_redis_degraded_calls_total")
        ]
        # At least one fallback on each of the six calls (its limits are one round trip).
        assert sum(degraded) >= 6, scraped
        refused = [
            line for line in scraped.splitlines() if line.startswith("studyhall_rate_limit_")
        ]
        assert refused
        assert all(line.endswith(" 0.0") for line in refused), refused
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_serving(channel: grpc.Channel, process: subprocess.Popen[str]) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(300):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise AssertionError("members never became SERVING")
