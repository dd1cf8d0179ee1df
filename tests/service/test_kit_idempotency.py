"""A retried create with the same request id acts once and returns the first result."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from studyhall.members.v1 import members_service_pb2 as pb
from tests.support.notes_runner import running_notes

pytestmark = pytest.mark.service


async def test_retry_with_same_request_id_returns_first_result(
    database_url: str, data_dir: Path
) -> None:
    async with running_notes(database_url, data_dir) as notes:
        request = pb.CreateCommunityRequest(name="hello", request_id="req-1")
        first = await notes.add_note(request, metadata=notes.auth("alice"))
        second = await notes.add_note(request, metadata=notes.auth("alice"))
        assert second == first
        assert await notes.service.count() == 1


async def test_same_request_id_with_different_payload_is_refused(
    database_url: str, data_dir: Path
) -> None:
    async with running_notes(database_url, data_dir) as notes:
        await notes.add_note(
            pb.CreateCommunityRequest(name="a", request_id="req-1"), metadata=notes.auth("alice")
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await notes.add_note(
                pb.CreateCommunityRequest(name="b", request_id="req-1"),
                metadata=notes.auth("alice"),
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "req-1" in (caught.value.details() or "")
        assert await notes.service.count() == 1


async def test_request_ids_are_scoped_to_the_caller(database_url: str, data_dir: Path) -> None:
    async with running_notes(database_url, data_dir) as notes:
        request = pb.CreateCommunityRequest(name="same", request_id="req-1")
        alice = await notes.add_note(request, metadata=notes.auth("alice"))
        bob = await notes.add_note(request, metadata=notes.auth("bob"))
        assert alice.id != bob.id
        assert bob.owner_user_id == "bob"
        assert await notes.service.count() == 2


async def test_concurrent_retries_act_once(database_url: str, data_dir: Path) -> None:
    async with running_notes(database_url, data_dir) as notes:
        request = pb.CreateCommunityRequest(
            name="burst", request_id="req-burst", topic="sleep:0.05"
        )
        replies = await asyncio.gather(
            *(notes.add_note(request, metadata=notes.auth("alice")) for _ in range(8))
        )
        assert len({reply.id for reply in replies}) == 1
        assert await notes.service.count() == 1


async def test_without_request_id_every_call_acts(database_url: str, data_dir: Path) -> None:
    async with running_notes(database_url, data_dir) as notes:
        request = pb.CreateCommunityRequest(name="no key")
        await notes.add_note(request, metadata=notes.auth("alice"))
        await notes.add_note(request, metadata=notes.auth("alice"))
        assert await notes.service.count() == 2
