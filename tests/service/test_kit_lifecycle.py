"""Health means something: NOT_SERVING until the service can work, SERVING while it can,
NOT_SERVING from the moment it is asked to stop; calls in flight finish before it exits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.database import Database
from services.kit.server import LIVENESS
from studyhall.members.v1 import members_service_pb2 as pb
from tests.support.notes_runner import running_notes
from tests.support.notes_service import SERVICE

pytestmark = pytest.mark.service

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(channel: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=2
    )
    return int(reply.status)


async def _eventually(channel: grpc.aio.Channel, expected: int, service: str = "") -> None:
    for _ in range(100):
        if await _status(channel, service) == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"health of {service!r} never became {expected}")


async def test_not_serving_until_start_up_succeeds_then_serving(
    tmp_path: Path, data_dir: Path
) -> None:
    async with running_notes(
        f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", data_dir, start_failures=3, wait=False
    ) as notes:
        assert await _status(notes.channel) == NOT_SERVING
        assert await _status(notes.channel, LIVENESS) == SERVING
        await _eventually(notes.channel, SERVING)
        assert await _status(notes.channel, SERVICE) == SERVING


async def test_readiness_follows_the_database(tmp_path: Path, data_dir: Path) -> None:
    database_up = True

    async def ready(database: Database) -> bool:
        return database_up and await database.ping()

    async with running_notes(
        f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", data_dir, ready=ready
    ) as notes:
        database_up = False
        await _eventually(notes.channel, NOT_SERVING)
        # Liveness is about the process only: restarting it would not bring a database back.
        assert await _status(notes.channel, LIVENESS) == SERVING
        database_up = True
        await _eventually(notes.channel, SERVING)


async def test_stop_turns_not_serving_at_once_and_drains_calls_in_flight(
    tmp_path: Path, data_dir: Path
) -> None:
    async with running_notes(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", data_dir) as notes:
        in_flight = asyncio.ensure_future(
            notes.add_note(
                pb.CreateCommunityRequest(name="finishing", topic="sleep:0.8"),
                metadata=notes.auth("alice"),
            )
        )
        while notes.service.calls_started == 0:
            await asyncio.sleep(0.01)
        watcher = health_pb2_grpc.HealthStub(notes.channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watcher.read()).status == SERVING
        stopping = asyncio.ensure_future(notes.server.shutdown())
        assert (await watcher.read()).status == NOT_SERVING
        reply = await in_flight
        assert reply.name == "finishing"
        await stopping
        assert await notes.service.count() == 1
