"""Writes that arrive together, committed together in one transaction.

A small write is a few indexed statements; what it pays for is the transaction around them:
BEGIN, the commit that waits for the disk, and the driver's overhead per statement. Writes
that arrive while a transaction is open wait for the next one, so under load one
transaction carries a whole group, while a lone write still commits at once
(docs/decisions/0011).

A group gives the same answers as its writes one by one: the commit function decides each
in arrival order against what the ones before it did, a refusal (a DomainError returned in
its place) is that caller's answer, and when the transaction itself fails every write in it
is tried again alone, so one write's failure is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import Database
from services.kit.errors import Aborted, DomainError
from services.kit.idempotency import ATTEMPTS, RETRY_JITTER_SECONDS, contended

CommandT = TypeVar("CommandT")
ResponseT = TypeVar("ResponseT")

# Bounds one transaction's statements and the parameters of its multi-row inserts.
MAX_GROUP = 128
# How long the first write of a group waits for others under load, and how long without a
# write counts as quiet, when a write commits at once.
GATHER_SECONDS = 0.010
QUIET_SECONDS = 0.05


class GroupCommitter(Generic[CommandT, ResponseT]):
    """Takes commands from concurrent callers and commits them in groups.

    `commit(session, commands)` runs inside one write transaction and returns, in order, each
    command's response or the DomainError that refuses it; a refusal must leave nothing of
    its command in the transaction. Any other exception fails the group."""

    def __init__(
        self,
        database: Database,
        commit: Callable[[AsyncSession, list[CommandT]], Awaitable[list[ResponseT | DomainError]]],
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.commit = commit
        # Called after a group with at least one committed command: wakes the relay.
        self.on_commit = on_commit
        # Each command with its caller's future and span (the span its statements go under).
        self._waiting: list[tuple[CommandT, asyncio.Future[ResponseT], trace.Span]] = []
        self._committer: asyncio.Task[None] | None = None
        self._full = asyncio.Event()
        self._last_arrival = float("-inf")

    async def submit(self, command: CommandT) -> ResponseT:
        now = time.monotonic()
        quiet = now - self._last_arrival > QUIET_SECONDS
        self._last_arrival = now
        future: asyncio.Future[ResponseT] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, future, trace.get_current_span()))
        if len(self._waiting) >= MAX_GROUP:
            self._full.set()
        if self._committer is None:
            # An empty context: the committer serves many callers and belongs to no one's
            # trace; what needs the caller's context carries it in the command.
            self._committer = asyncio.create_task(
                self._commit_waiting(gather=not quiet), context=contextvars.Context()
            )
        return await future

    async def _commit_waiting(self, *, gather: bool) -> None:
        try:
            while self._waiting:
                if gather:
                    await self._gather()
                # Whoever waits now came during a transaction: writes are arriving.
                gather = True
                group = [item for item in self._waiting[:MAX_GROUP] if not item[1].done()]
                del self._waiting[:MAX_GROUP]
                if group:
                    await self._settle(group)
        finally:
            self._committer = None

    async def _gather(self) -> None:
        """Wait a moment for more writes to share the transaction.

        The gRPC server takes in calls one at a time, each after the event loop's turn in
        which the one before it was handled: under load writes arrive one after another
        even when many callers wait, and without a wait none would ever find another to
        share a transaction with. A write after a quiet spell does not wait (see `submit`)."""
        self._full.clear()
        if len(self._waiting) >= MAX_GROUP:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GATHER_SECONDS):
                await self._full.wait()

    async def _settle(
        self, group: list[tuple[CommandT, asyncio.Future[ResponseT], trace.Span]]
    ) -> None:
        commands = [command for command, _, _ in group]
        spans = [span for _, _, span in group]
        outcomes: list[ResponseT | BaseException]
        try:
            outcomes = [*await self._commit(commands, spans)]
        except asyncio.CancelledError:
            for _, future, _ in group:
                future.cancel()
            raise
        except Exception as error:
            if len(group) > 1:
                # Whose write broke the transaction is unknown: each goes again on its own.
                for item in group:
                    await self._settle([item])
                return
            # Alone, a lost race (a replica committed the same request id or row meanwhile)
            # is settled by running again on fresh rows; anything else is its own.
            outcomes = await self._again(commands, spans) if contended(error) else [error]
        committed = False
        for (_, future, _), outcome in zip(group, outcomes, strict=True):
            if future.done():
                continue  # the caller gave up waiting; the write stands
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
                committed = True
        if committed:
            self.on_commit()

    async def _again(
        self, commands: list[CommandT], spans: list[trace.Span]
    ) -> list[ResponseT | BaseException]:
        """Run a write that lost a race again, as IdempotentWriter runs any write: up to
        ATTEMPTS times with a growing random pause, then ABORTED (decision 0019)."""
        for attempt in range(2, ATTEMPTS + 1):
            await asyncio.sleep(random.uniform(0, RETRY_JITTER_SECONDS * attempt))
            try:
                return [*await self._commit(commands, spans)]
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not contended(error):
                    return [error for _ in commands]
        aborted = Aborted("the write lost a race with concurrent changes too often; retry it")
        return [aborted for _ in commands]

    async def _commit(
        self, commands: list[CommandT], spans: list[trace.Span]
    ) -> list[ResponseT | DomainError]:
        with _under_callers(spans):
            async with self.database.write() as session:
                return await self.commit(session, commands)


_TRACER = trace.get_tracer("studyhall.groups")


@contextlib.contextmanager
def _under_callers(spans: list[trace.Span]) -> Iterator[None]:
    """The transaction's statements go under its callers' trace, never into one of their
    own (an orphan): a lone write's under its caller's span; a group's under a `commit group`
    span, the child of its first caller's span, linked to the others' (decision 0060)."""
    callers = [span for span in spans if span.is_recording()]
    if not callers:
        yield
        return
    first, *others = callers
    if not others:
        token = otel_context.attach(trace.set_span_in_context(first))
        try:
            yield
        finally:
            otel_context.detach(token)
        return
    with _TRACER.start_as_current_span(
        "commit group",
        context=trace.set_span_in_context(first),
        kind=SpanKind.INTERNAL,
        links=[trace.Link(span.get_span_context()) for span in others],
        attributes={"studyhall.group.size": len(spans)},
    ):
        yield
