"""Idempotent mutations: a retry with the same client request id returns the first result.

The response is stored in the same transaction as the change it describes, so either both
exist or neither does. Keys are scoped by caller and method: two users can pick the same
request id without seeing each other's results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
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
    """Runs every mutating RPC the same way: its change in one write transaction, applied
    once per (caller, method, request id), with the relay woken after the commit."""

    def __init__(
        self, database: Database, table: Table, on_commit: Callable[[], None] = lambda: None
    ) -> None:
        self.database = database
        self.table = table
        # Called after a transaction that may have staged events commits: wakes the relay.
        self.on_commit = on_commit

    async def write(
        self,
        caller: str,
        request: Message,
        response_type: type[ResponseT],
        action: Callable[[AsyncSession], Awaitable[ResponseT]],
    ) -> ResponseT:
        """The one way a handler changes state: `action` runs in a write transaction, once
        for `request`'s request id (the method is named by the request's message type)."""
        key = IdempotencyKey(caller, method_of(request), getattr(request, "request_id", ""))
        response = await self.run(key, request, response_type, action)
        self.on_commit()
        return response

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
        digest = fingerprint(request)
        for attempt in range(2):
            try:
                async with self.database.write() as session:
                    found = await self.recorded(session, key.method, [key])
                    if key in found:
                        return replay(key, digest, found[key], response_type)
                    response = await action(session)
                    await self.record(session, [(key, digest, response)])
                    return response
            except IntegrityError:
                # A concurrent call with the same key won the race; replay its result.
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def recorded(
        self, session: AsyncSession, method: str, keys: Sequence[IdempotencyKey]
    ) -> dict[IdempotencyKey, Recorded]:
        """The stored results of those of `keys` (all of `method`) that have run before."""
        wanted = {key for key in keys if key.request_id}
        if not wanted:
            return {}
        table = self.table
        rows = await session.execute(
            select(table.c.caller, table.c.request_id, table.c.request_hash, table.c.response)
            .where(table.c.method == method)
            .where(table.c.caller.in_({key.caller for key in wanted}))
            .where(table.c.request_id.in_({key.request_id for key in wanted}))
        )
        found: dict[IdempotencyKey, Recorded] = {}
        for row in rows:
            key = IdempotencyKey(row.caller, method, row.request_id)
            # The two IN lists may cross-match other callers' keys: keep the asked ones.
            if key in wanted:
                found[key] = Recorded(row.request_hash, row.response)
        return found

    async def record(
        self, session: AsyncSession, results: Sequence[tuple[IdempotencyKey, str, Message]]
    ) -> None:
        """Store (key, request fingerprint, response) in the caller's transaction."""
        now = datetime.now(UTC)
        rows = [
            {
                "caller": key.caller,
                "method": key.method,
                "request_id": key.request_id,
                "request_hash": digest,
                "response": response.SerializeToString(),
                "created_at": now,
            }
            for key, digest, response in results
        ]
        if rows:
            await session.execute(self.table.insert(), rows)

    async def purge(self, older_than: timedelta) -> int:
        """Forget keys older than the retry window; returns how many were removed."""
        cutoff = datetime.now(UTC) - older_than
        async with self.database.write() as session:
            result = await session.execute(
                delete(self.table).where(self.table.c.created_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Recorded:
    """What a keyed request stored: its fingerprint and its serialized response."""

    request_hash: str
    response: bytes


def replay(
    key: IdempotencyKey, digest: str, recorded: Recorded, response_type: type[ResponseT]
) -> ResponseT:
    """The first response to `key`, or FAILED_PRECONDITION when the key came with another
    request the first time."""
    if recorded.request_hash != digest:
        raise FailedPrecondition(
            f"request_id {key.request_id!r} was already used for a different request; "
            "use a new request_id for a new request"
        )
    response = response_type()
    response.ParseFromString(recorded.response)
    return response


def method_of(request: Message) -> str:
    """`CreateCommunity` for a `CreateCommunityRequest`: the key's method."""
    return request.DESCRIPTOR.name.removesuffix("Request")


def fingerprint(request: Message) -> str:
    """A request's identity apart from its request id."""
    copy = type(request)()
    copy.CopyFrom(request)
    if "request_id" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()
