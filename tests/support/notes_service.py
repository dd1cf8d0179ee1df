"""A small service defined for the kit's tests: it exercises auth, errors, deadlines,
idempotency, readiness and draining through a real grpc.aio server and a real database.

It borrows the members contract's messages so no extra proto is needed: the request's
`name` is the note's text and `topic` tells the handler how to behave.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from sqlalchemy import Column, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import errors
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.idempotency import IdempotencyKey, IdempotentWriter, idempotency_table
from services.kit.validation import Violations
from studyhall.members.v1 import members_service_pb2 as pb

SERVICE = "studyhall.test.v1.NotesService"

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("author", String(200), nullable=False),
    Column("text", String(200), nullable=False),
)
keys = idempotency_table(metadata)

FAILURES: dict[str, Callable[[], Exception]] = {
    "invalid": lambda: errors.InvalidArgument([errors.FieldViolation("name", "is too shouty")]),
    "not_found": lambda: errors.NotFound("note 42 not found"),
    "exists": lambda: errors.AlreadyExists("note already exists"),
    "denied": lambda: errors.PermissionDenied("only moderators may do that"),
    "precondition": lambda: errors.FailedPrecondition("the community is archived"),
    "crash": lambda: ZeroDivisionError("division by zero"),
}


class NotesService:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.writer = IdempotentWriter(database, keys)
        self.calls_started = 0

    async def add_note(self, request: pb.CreateCommunityRequest, context: Any) -> pb.Community:
        self.calls_started += 1
        caller = current_identity()
        problems = Violations()
        problems.text("name", request.name, max_length=200)
        problems.text("mission", request.mission, required=False, max_length=10)
        problems.raise_if_any()
        behaviour, _, argument = request.topic.partition(":")
        if behaviour in FAILURES:
            raise FAILURES[behaviour]()

        async def write(session: AsyncSession) -> pb.Community:
            if behaviour == "sleep":
                await asyncio.sleep(float(argument))
            note_id = str(uuid.uuid4())
            await session.execute(
                notes.insert().values(id=note_id, author=caller.user_id, text=request.name)
            )
            return pb.Community(id=note_id, name=request.name, owner_user_id=caller.user_id)

        key = IdempotencyKey(caller.user_id, "AddNote", request.request_id)
        return await self.writer.run(key, request, pb.Community, write)

    async def whoami(self, request: pb.GetCommunityRequest, context: Any) -> pb.Community:
        caller = current_identity()
        return pb.Community(
            owner_user_id=caller.user_id, slug="operator" if caller.operator else ""
        )

    async def count(self) -> int:
        async with self.database.read() as session:
            return int(await session.scalar(select(func.count()).select_from(notes)) or 0)

    def register(self, server: grpc.aio.Server) -> None:
        handlers = {
            "AddNote": grpc.unary_unary_rpc_method_handler(
                self.add_note,
                request_deserializer=pb.CreateCommunityRequest.FromString,
                response_serializer=pb.Community.SerializeToString,
            ),
            "Whoami": grpc.unary_unary_rpc_method_handler(
                self.whoami,
                request_deserializer=pb.GetCommunityRequest.FromString,
                response_serializer=pb.Community.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])


def unary(
    channel: grpc.aio.Channel, method: str, response: type[Any]
) -> Callable[..., Awaitable[Any]]:
    return channel.unary_unary(  # type: ignore[no-any-return]
        f"/{SERVICE}/{method}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response.FromString,
    )


class RunningNotes:
    def __init__(
        self,
        service: NotesService,
        server: Any,
        channel: grpc.aio.Channel,
        signer: Any,
        signer_dir: Any,
    ):
        self.signer_dir = signer_dir
        self.service = service
        self.server = server
        self.channel = channel
        self.signer = signer
        self.add_note = unary(channel, "AddNote", pb.Community)
        self.whoami = unary(channel, "Whoami", pb.Community)

    def auth(self, user_id: str, *, operator: bool = False) -> list[tuple[str, str]]:
        return [("authorization", "Bearer " + self.signer.mint(user_id, operator=operator))]
