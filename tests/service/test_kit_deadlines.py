"""A client's deadline bounds the work done for it: past it, nothing is written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from studyhall.members.v1 import members_service_pb2 as pb
from tests.support.notes_runner import running_notes

pytestmark = pytest.mark.service


async def test_work_past_the_clients_deadline_is_abandoned_and_writes_nothing(
    tmp_path: Path, data_dir: Path
) -> None:
    async with running_notes(f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}", data_dir) as notes:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await notes.add_note(
                pb.CreateCommunityRequest(name="slow", topic="sleep:1.0"),
                metadata=notes.auth("alice"),
                timeout=0.3,
            )
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # Give the abandoned handler time to have written, had it gone on.
        await asyncio.sleep(1.2)
        assert await notes.service.count() == 0


async def test_call_within_its_deadline_succeeds(tmp_path: Path, data_dir: Path) -> None:
    async with running_notes(f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}", data_dir) as notes:
        reply = await notes.add_note(
            pb.CreateCommunityRequest(name="quick", topic="sleep:0.05"),
            metadata=notes.auth("alice"),
            timeout=5,
        )
        assert reply.name == "quick"
        assert await notes.service.count() == 1
