"""The standard OTEL_* variables, as platform teams set them for every service they run, on a
members process exporting to a real OTLP receiver: OTEL_SERVICE_NAME names the spans'
service, OTEL_TRACES_SAMPLER=always_off sends no span (metrics still flow), and
OTEL_SDK_DISABLED=true sends nothing at all."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from services.kit.auth import LocalSigner
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support.otlp import Receiver, otlp_receiver
from tests.support.processes import service_process

pytestmark = pytest.mark.service

# Export at once, so that an absence after a few seconds means something.
FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as found:
        yield found


async def _calls(port: int, data_dir: Path) -> None:
    signer = LocalSigner.ensure(data_dir)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.MembersServiceStub(channel)
        for _ in range(3):
            await stub.CreateCommunity(
                pb.CreateCommunityRequest(name=f"Club {uuid.uuid4().hex[:6]}", topic="english"),
                metadata=[("authorization", "Bearer " + signer.mint("olga"))],
            )


async def _until(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.1)
    return False


@contextmanager
def _run(
    receiver: Receiver, data_dir: Path, redis_url: str, nats_url: str, **env: str
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A members process whose environment holds `env` (the test process's, passed on)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            **FAST,
            **env,
        }.items():
            patch.setenv(name, value)
        with service_process(
            "members",
            data_dir,
            f"sqlite+aiosqlite:///{data_dir / 'members.db'}",
            redis_url,
            nats_url,
        ) as running:
            yield running


async def test_otel_service_name_names_the_spans_service(
    receiver: Receiver, data_dir: Path, redis_url: str, nats_url: str
) -> None:
    with _run(receiver, data_dir, redis_url, nats_url, OTEL_SERVICE_NAME="lms-members") as (
        _,
        port,
    ):
        await _calls(port, data_dir)
        assert await _until(lambda: any(s.name.endswith("CreateCommunity") for s in receiver.spans))
    assert {span.service for span in receiver.spans} == {"lms-members"}


async def test_an_always_off_sampler_sends_no_span_and_metrics_still_flow(
    receiver: Receiver, data_dir: Path, redis_url: str, nats_url: str
) -> None:
    with _run(receiver, data_dir, redis_url, nats_url, OTEL_TRACES_SAMPLER="always_off") as (
        _,
        port,
    ):
        await _calls(port, data_dir)
        assert await _until(
            lambda: (
                "rpc.server.call.duration" in receiver.metric_names
                or any("rpc" in name for name in receiver.metric_names)
            )
        )
        await asyncio.sleep(1.0)  # spans would have been exported ten times over
    assert receiver.spans == []


async def test_a_disabled_sdk_sends_nothing(
    receiver: Receiver, data_dir: Path, redis_url: str, nats_url: str
) -> None:
    with _run(receiver, data_dir, redis_url, nats_url, OTEL_SDK_DISABLED="true") as (_, port):
        await _calls(port, data_dir)
        await asyncio.sleep(2.0)  # several export intervals of both signals
    assert (receiver.spans, receiver.metric_names) == ([], set())
