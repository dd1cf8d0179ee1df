"""Idempotent mutations: a retry with the same client request id returns the first result.

The response is stored in the same transaction as the change it describes, so either both
exist or neither does. Keys are scoped by caller and method: two users can pick the same
request id without seeing each other's results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import Column, DateTime, LargeBinary, MetaData, String, Table, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import Database
from services.kit.errors import FailedPrecondition

ResponseT = TypeVar("ResponseT", bound=Message)


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("caller", String(200), primary_key=True),
        Column("method", String(200), primary_key=True),
        Column("request_id", String(128), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("response", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    )


@dataclass(frozen=True)
class IdempotencyKey:
    caller: str
    method: str
    request_id: str


class IdempotentWriter:
    def __init__(self, database: Database, table: Table) -> None:
        self.database = database
        self.table = table

    async def run(
        self,
        key: IdempotencyKey,
        request: Message,
        response_type: type[ResponseT],
        action: Callable[[AsyncSession], Awaitable[ResponseT]],
    ) -> ResponseT:
        """Run `action` in a write transaction once per key; replay its response after."""
        if not key.request_id:
            async with self.database.write() as session:
                return await action(session)
        fingerprint = _fingerprint(request)
        for attempt in range(2):
            try:
                async with self.database.write() as session:
                    replayed = await self._replay(session, key, fingerprint, response_type)
                    if replayed is not None:
                        return replayed
                    response = await action(session)
                    await session.execute(
                        self.table.insert().values(
                            caller=key.caller,
                            method=key.method,
                            request_id=key.request_id,
                            request_hash=fingerprint,
                            response=response.SerializeToString(),
                            created_at=datetime.now(UTC),
                        )
                    )
                    return response
            except IntegrityError:
                # A concurrent call with the same key won the race; replay its result.
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def _replay(
        self,
        session: AsyncSession,
        key: IdempotencyKey,
        fingerprint: str,
        response_type: type[ResponseT],
    ) -> ResponseT | None:
        row = (
            await session.execute(
                select(self.table.c.request_hash, self.table.c.response).where(
                    self.table.c.caller == key.caller,
                    self.table.c.method == key.method,
                    self.table.c.request_id == key.request_id,
                )
            )
        ).first()
        if row is None:
            return None
        if row.request_hash != fingerprint:
            raise FailedPrecondition(
                f"request_id {key.request_id!r} was already used for a different request; "
                "use a new request_id for a new request"
            )
        response = response_type()
        response.ParseFromString(row.response)
        return response

    async def purge(self, older_than: timedelta) -> int:
        """Forget keys older than the retry window; returns how many were removed."""
        cutoff = datetime.now(UTC) - older_than
        async with self.database.write() as session:
            result = await session.execute(
                delete(self.table).where(self.table.c.created_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)


def _fingerprint(request: Message) -> str:
    copy = type(request)()
    copy.CopyFrom(request)
    if "request_id" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()
