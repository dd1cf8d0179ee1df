"""ExportMyData and EraseMyData of a service that is not members: its own records of a user.

Members decides who belongs; the other services only hold records about people. A user
may export and erase their own records in any community, member or not, a former member
too, and in an archived community (DESIGN rule 8 still holds: what a call returns or
changes is the caller's, in the community it names). Platform operators act for a named
user. Nothing is refused for holding nothing: the export's sections are then empty and
the erasure changes nothing, the same answer for a community that does not exist, so
neither call tells anyone whether a community exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import data_rights
from services.kit.auth import Identity, current_identity
from services.kit.data_rights import DataHolder, Eraser
from services.kit.database import Database
from services.kit.errors import PermissionDenied
from services.kit.grouped_writes import Writer
from services.kit.timestamps import timestamp
from services.kit.validation import Violations


class DataRightsMessages(Protocol):
    """The generated module of a service's proto: its four data-rights messages."""

    ExportMyDataResponse: Any
    EraseMyDataResponse: Any


class DataRightsApi:
    """The two handlers, for the service whose messages live in `messages`."""

    def __init__(
        self,
        database: Database,
        writer: Writer,
        holders: Sequence[DataHolder],
        messages: DataRightsMessages,
        on_request: Mapping[str, Sequence[Eraser]] | None = None,
    ) -> None:
        data_rights.check_holders(holders)
        self.database = database
        self.writer = writer
        self.holders = tuple(holders)
        self.messages = messages
        # Erasers a request asks for by a flag of its own (content's `erase_text`); they run
        # before the holders' erasers, which may remove what they find records by.
        self.on_request = dict(on_request or {})

    async def ExportMyData(self, request: Any, context: grpc.aio.ServicerContext) -> Message:
        problems = Violations()
        problems.text("user_id", request.user_id, required=False)
        problems.raise_if_any()
        subject = data_subject(current_identity(), request.user_id)
        async with self.database.read() as session:
            document = await data_rights.export_document(
                session, self.holders, request.community_id, subject
            )
        response: Message = self.messages.ExportMyDataResponse(
            document=document, content_type=data_rights.CONTENT_TYPE
        )
        return response

    async def EraseMyData(self, request: Any, context: grpc.aio.ServicerContext) -> Message:
        caller = current_identity()
        problems = Violations()
        problems.text("user_id", request.user_id, required=False)
        if not request.confirm:
            problems.add("confirm", "must be true: erasure cannot be undone")
        problems.raise_if_any()
        subject = data_subject(caller, request.user_id)

        async def erase(session: AsyncSession) -> Message:
            for flag, erasers in self.on_request.items():
                if getattr(request, flag):
                    for eraser in erasers:
                        await eraser(session, request.community_id, subject)
            await data_rights.erase_all(session, self.holders, request.community_id, subject)
            response: Message = self.messages.EraseMyDataResponse(
                erase_time=timestamp(datetime.now(UTC))
            )
            return response

        return await self.writer.write(
            caller.user_id, request, self.messages.EraseMyDataResponse, erase
        )


def data_subject(caller: Identity, user_id: str) -> str:
    """Whose data a data-rights call acts on: the caller's, or an operator's named user's."""
    if user_id and user_id != caller.user_id and not caller.operator:
        raise PermissionDenied("only platform operators act on another user's data")
    return user_id or caller.user_id
