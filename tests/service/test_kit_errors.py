"""Errors reach the client with the right status and a message a person can act on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from studyhall.members.v1 import members_service_pb2 as pb
from tests.harness.servers import PostgresHandle
from tests.support.notes_runner import running_notes
from tests.support.notes_service import RunningNotes

pytestmark = pytest.mark.service


@pytest.fixture
async def notes(tmp_path: Path, data_dir: Path) -> AsyncIterator[RunningNotes]:
    async with running_notes(f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}", data_dir) as running:
        yield running


@pytest.mark.parametrize(
    ("behaviour", "code", "message"),
    [
        ("not_found", grpc.StatusCode.NOT_FOUND, "note 42 not found"),
        ("exists", grpc.StatusCode.ALREADY_EXISTS, "note already exists"),
        ("denied", grpc.StatusCode.PERMISSION_DENIED, "only moderators may do that"),
        ("precondition", grpc.StatusCode.FAILED_PRECONDITION, "the community is archived"),
    ],
)
async def test_domain_error_maps_to_its_status(
    notes: RunningNotes, behaviour: str, code: grpc.StatusCode, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notes.add_note(
            pb.CreateCommunityRequest(name="n", topic=behaviour), metadata=notes.auth("alice")
        )
    assert caught.value.code() == code
    assert caught.value.details() == message
    assert await notes.service.count() == 0


async def test_invalid_argument_names_every_field_in_bad_request_details(
    notes: RunningNotes,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notes.add_note(
            pb.CreateCommunityRequest(name="", mission="x" * 11),
            metadata=notes.auth("alice"),
        )
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name: is required" in (error.details() or "")
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    fields = {violation.field for violation in bad_request.field_violations}
    assert fields == {"name", "mission"}
    assert await notes.service.count() == 0


async def test_unexpected_exception_is_internal_with_trace_reference_not_unknown(
    notes: RunningNotes,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notes.add_note(
            pb.CreateCommunityRequest(name="n", topic="crash"), metadata=notes.auth("a")
        )
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    details = caught.value.details() or ""
    assert details.startswith("internal error; quote ")
    assert "0000000000000000" not in details
    assert "ZeroDivision" not in details


async def test_server_keeps_serving_after_an_internal_error(notes: RunningNotes) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await notes.add_note(
            pb.CreateCommunityRequest(name="n", topic="crash"), metadata=notes.auth("a")
        )
    reply = await notes.add_note(pb.CreateCommunityRequest(name="fine"), metadata=notes.auth("a"))
    assert reply.name == "fine"
    assert await notes.service.count() == 1


async def test_a_lost_database_connection_is_unavailable_and_the_next_call_succeeds(
    postgres_database: tuple[PostgresHandle, str], data_dir: Path
) -> None:
    server, name = postgres_database
    async with running_notes(server.database_url(name), data_dir, readiness_interval=3600) as notes:
        await notes.add_note(pb.CreateCommunityRequest(name="one"), metadata=notes.auth("a"))
        server.cut_connections(name)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await notes.add_note(pb.CreateCommunityRequest(name="two"), metadata=notes.auth("a"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == "the database connection was lost; retry the call"
        await notes.add_note(pb.CreateCommunityRequest(name="two"), metadata=notes.auth("a"))
        assert await notes.service.count() == 2
