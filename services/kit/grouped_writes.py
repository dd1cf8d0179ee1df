"""Idempotent writes that arrive together, committed together (services/kit/groups.py).

`GroupedWriter.write` has the call shape of `IdempotentWriter.write`, so a handler takes
either (`Writer`). Each write's action still runs alone as far as its caller can tell: in its
caller's context (identity, trace: its outbox rows continue its caller's trace), inside a
SAVEPOINT when it shares the transaction, so a refusal (a DomainError) rolls back only that
action and becomes only that caller's answer (a group first runs under one SAVEPOINT, and
only a group with a refusal runs again with one per write). Idempotency keys are looked up
once per group and method and recorded with one insert; a key repeated within a group
replays the first.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.errors import DomainError
from services.kit.groups import GroupCommitter
from services.kit.idempotency import (
    IdempotencyKey,
    IdempotentWriter,
    Recorded,
    fingerprint,
    method_of,
    replay,
)

ResponseT = TypeVar("ResponseT", bound=Message)


class Writer(Protocol):
    """What a handler changes state through: `IdempotentWriter` or `GroupedWriter`."""

    async def write(
        self,
        caller: str,
        request: Message,
        response_type: type[ResponseT],
        action: Callable[[AsyncSession], Awaitable[ResponseT]],
    ) -> ResponseT: ...


@dataclass(frozen=True)
class _Write:
    key: IdempotencyKey
    digest: str  # the request's fingerprint when it carries a request id, else ""
    response_type: type[Message]
    action: Callable[[AsyncSession], Awaitable[Message]]
    # The caller's context: the committer task runs in an empty one of its own.
    context: contextvars.Context


class GroupedWriter:
    """An `IdempotentWriter` whose writes commit in groups."""

    def __init__(self, idempotent: IdempotentWriter) -> None:
        self.idempotent = idempotent
        self.committer: GroupCommitter[_Write, Message] = GroupCommitter(
            idempotent.database, self._commit, on_commit=lambda: self.idempotent.on_commit()
        )

    async def write(
        self,
        caller: str,
        request: Message,
        response_type: type[ResponseT],
        action: Callable[[AsyncSession], Awaitable[ResponseT]],
    ) -> ResponseT:
        """`action` runs in a write transaction, once for `request`'s request id, perhaps
        with other callers' actions in the same transaction."""
        key = IdempotencyKey(caller, method_of(request), getattr(request, "request_id", ""))
        digest = fingerprint(request) if key.request_id else ""
        write = _Write(key, digest, response_type, action, contextvars.copy_context())
        return cast(ResponseT, await self.committer.submit(write))

    async def _commit(
        self, session: AsyncSession, writes: list[_Write]
    ) -> list[Message | DomainError]:
        recorded: dict[IdempotencyKey, Recorded] = {}
        for method in {write.key.method for write in writes if write.key.request_id}:
            keys = [write.key for write in writes if write.key.method == method]
            recorded.update(await self.idempotent.recorded(session, method, keys))
        if len(writes) == 1:
            # Alone, a refusal propagates and rolls the transaction back.
            outcomes, results = await self._run_all(session, writes, dict(recorded), alone=True)
        else:
            try:
                # Most groups hold no refusal: run them under one SAVEPOINT for the group
                # instead of one per write, and only when a write refuses, undo the group
                # and run it again with a SAVEPOINT per write. The answers are the same:
                # either way each write sees what the writes before it that stand did.
                async with session.begin_nested():
                    outcomes, results = await self._run_all(
                        session, writes, dict(recorded), alone=True
                    )
            except DomainError:
                outcomes, results = await self._run_all(
                    session, writes, dict(recorded), alone=False
                )
        await self.idempotent.record(session, results)
        return outcomes

    async def _run_all(
        self,
        session: AsyncSession,
        writes: list[_Write],
        recorded: dict[IdempotencyKey, Recorded],
        *,
        alone: bool,
    ) -> tuple[list[Message | DomainError], list[tuple[IdempotencyKey, str, Message]]]:
        """Each write's answer in order; `alone`: a refusal propagates, else each write runs
        in a SAVEPOINT and a refusal is its caller's answer."""
        outcomes: list[Message | DomainError] = []
        results: list[tuple[IdempotencyKey, str, Message]] = []
        for write in writes:
            key = write.key
            try:
                if key in recorded:
                    outcomes.append(replay(key, write.digest, recorded[key], write.response_type))
                    continue
                response = await self._run(session, write, savepoint=not alone)
            except DomainError as refusal:
                if alone:
                    raise
                outcomes.append(refusal)
                continue
            outcomes.append(response)
            if key.request_id:
                # A repeat of the key later in the group replays this answer.
                recorded[key] = Recorded(write.digest, response.SerializeToString())
                results.append((key, write.digest, response))
        return outcomes, results

    @staticmethod
    async def _run(session: AsyncSession, write: _Write, *, savepoint: bool) -> Message:
        """`write`'s action in its caller's context, in a SAVEPOINT of its own if asked."""

        async def run() -> Message:
            if not savepoint:
                return await write.action(session)
            async with session.begin_nested():
                return await write.action(session)

        # A task is the way to run a coroutine in another context; it runs to its end
        # before the next action starts, so the actions still take turns on the session.
        return await asyncio.create_task(run(), context=write.context)
