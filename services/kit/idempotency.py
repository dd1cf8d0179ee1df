"""Idempotent mutations: a retry with the same client request id returns the first result.

The response is stored in the same transaction as the change it describes, so either both
exist or neither does. Keys are scoped by caller and method: two users can pick the same
request id without seeing each other's results.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import Database, insert_for
from services.kit.errors import Aborted, FailedPrecondition
from services.kit.versioned import StaleWrite

ResponseT = TypeVar("ResponseT", bound=Message)

# How often a transaction that lost a race runs again before the call is ABORTED, and the
# longest random pause before its first rerun (it grows with each), so that racers part.
ATTEMPTS = 8
RETRY_JITTER_SECONDS = 0.002
# PostgreSQL's codes for a lost race: unique violation (two inserts of one key),
# serialization failure, deadlock detected.
_CONTENDED_STATES = {"23505", "40001", "40P01"}


def contended(error: BaseException) -> bool:
    """Whether `error` is a transaction losing a race with another, which a rerun on fresh
    rows settles (a unique key taken meanwhile, a versioned row changed meanwhile, a
    deadlock), rather than a fault."""
    if isinstance(error, StaleWrite):
        return True
    if isinstance(error, DBAPIError):
        return getattr(error.orig, "sqlstate", None) in _CONTENDED_STATES
    return False


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
        """Run `action` in a write transaction once per key; replay its response after.

        The key is claimed before `action` runs: a retry that arrives while the first call
        is still in flight waits for it (PostgreSQL holds the second insert of a key until
        the first transaction ends; SQLite writers queue), then replays its answer, or, if
        the first call was refused and wrote nothing, runs itself. A transaction that loses
        a race with a concurrent change (`contended`) runs again on fresh rows, up to
        ATTEMPTS times, then the call is ABORTED (decision 0019)."""
        digest = fingerprint(request) if key.request_id else ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.database.write() as session:
                    if key.request_id:
                        found = await self.claim(session, key, digest)
                        if found is not None:
                            return replay(key, digest, found, response_type)
                    response = await action(session)
                    if key.request_id:
                        await self.settle(session, key, response)
                    return response
            except Exception as error:
                if not contended(error):
                    raise
                if attempt == ATTEMPTS:
                    raise Aborted(
                        "the records this call changes were changed concurrently "
                        f"{ATTEMPTS} times while it ran; retry it"
                    ) from error
            await asyncio.sleep(random.uniform(0, RETRY_JITTER_SECONDS * attempt))
        raise AssertionError("unreachable")

    async def claim(
        self, session: AsyncSession, key: IdempotencyKey, digest: str
    ) -> Recorded | None:
        """Take `key` for this transaction (None), or the result recorded for it before."""
        dialect = session.get_bind().dialect.name
        insert: Any = insert_for(dialect)
        table = self.table
        claimed = await session.scalar(
            insert(table)
            .values(
                caller=key.caller,
                method=key.method,
                request_id=key.request_id,
                request_hash=digest,
                response=b"",
                created_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing(index_elements=["caller", "method", "request_id"])
            .returning(table.c.request_id)
        )
        if claimed is not None:
            return None
        found = await self.recorded(session, key.method, [key])
        if key not in found:
            # The insert above waited for the key's first transaction and found its row;
            # only a purge of expired keys between the two statements removes it.
            raise Aborted(f"request_id {key.request_id!r} was just forgotten; retry the call")
        return found[key]

    async def settle(self, session: AsyncSession, key: IdempotencyKey, response: Message) -> None:
        """Record the response of the call that claimed `key`, in its transaction."""
        table = self.table
        await session.execute(
            update(table)
            .where(
                table.c.caller == key.caller,
                table.c.method == key.method,
                table.c.request_id == key.request_id,
            )
            .values(response=response.SerializeToString())
        )

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
