"""The one scheduler: work due at a time, run once, after restarts and with many replicas.

A job is a row of the service's `scheduled_jobs` table, written in the same transaction as
the change that makes it due (a draft scheduled, a seat held, a renewal set), so a job
exists exactly when its cause does. Every serving replica runs `Scheduler.run`: it claims
due rows (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer), runs each job's
handler in the claiming transaction and deletes the rows in it, so the effect and the end
of a job commit together or not at all: exactly once. A handler that refuses (a
DomainError, before it writes: the post was deleted meanwhile) ends its job; one that fails
otherwise is retried later with backoff.
Decision: docs/decisions/0018-one-scheduler-in-the-database.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opentelemetry import metrics
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import Database, utc
from services.kit.errors import DomainError

log = logging.getLogger(__name__)

# How often an idle replica looks for due work: the bound on lateness when another replica
# (or another process) scheduled it, since only the scheduling process is woken at once.
POLL_SECONDS = 0.25
BATCH = 200
# A failing job is tried again after 1 s, 2 s, 4 s ... at most an hour apart.
MAX_BACKOFF = timedelta(hours=1)


def schedule_table(metadata: MetaData) -> Table:
    return Table(
        "scheduled_jobs",
        metadata,
        Column("id", String(36), primary_key=True),
        # What to run ("publish_post") and on which record (a post id): one job each.
        Column("kind", String(64), nullable=False),
        Column("key", String(200), nullable=False),
        Column("community_id", String(36), nullable=False),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=False, server_default=""),
        UniqueConstraint("kind", "key", name="uq_scheduled_jobs_kind_key"),
        Index("ix_scheduled_jobs_due", "due_at"),
    )


@dataclass(frozen=True)
class Job:
    kind: str
    key: str
    community_id: str
    due_at: datetime
    attempts: int = 0


# Runs a due job inside the claiming transaction. It refuses with a DomainError, before it
# writes anything, when the work no longer applies: the job ends unrun.
Handler = Callable[[AsyncSession, Job], Awaitable[None]]


class _HandlerFailed(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(f"scheduled {job.kind} {job.key} failed")
        self.job = job


class Jobs:
    """Setting and cancelling jobs, in the caller's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def set(self, session: AsyncSession, job: Job) -> None:
        """Due at `job.due_at`: a new job, or the existing one of (kind, key) moved."""
        table = self.table
        moved = await session.execute(
            update(table)
            .where(table.c.kind == job.kind, table.c.key == job.key)
            .values(due_at=job.due_at, community_id=job.community_id, attempts=0, last_error="")
        )
        if moved.rowcount == 0:  # type: ignore[attr-defined]
            await session.execute(
                table.insert().values(
                    id=str(uuid.uuid4()),
                    kind=job.kind,
                    key=job.key,
                    community_id=job.community_id,
                    due_at=job.due_at,
                    created_at=datetime.now(UTC),
                )
            )

    async def cancel(self, session: AsyncSession, kind: str, key: str) -> bool:
        table = self.table
        gone = await session.execute(delete(table).where(table.c.kind == kind, table.c.key == key))
        return bool(gone.rowcount)  # type: ignore[attr-defined]

    async def get(self, session: AsyncSession, kind: str, key: str) -> Job | None:
        table = self.table
        row = (
            await session.execute(select(table).where(table.c.kind == kind, table.c.key == key))
        ).first()
        if row is None:
            return None
        return Job(row.kind, row.key, row.community_id, utc(row.due_at), int(row.attempts))


class Scheduler:
    """Runs the due jobs of one service; every replica runs one."""

    def __init__(
        self,
        service: str,
        database: Database,
        table: Table,
        handlers: Mapping[str, Handler],
        *,
        on_commit: Callable[[], None] = lambda: None,
        poll_seconds: float = POLL_SECONDS,
        batch: int = BATCH,
    ) -> None:
        self.database = database
        self.table = table
        self.handlers = dict(handlers)
        # After a batch committed: its handlers may have staged events for the relay.
        self.on_commit = on_commit
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._wake = asyncio.Event()
        meter = metrics.get_meter("studyhall.schedule")
        self._lateness = meter.create_histogram(
            "studyhall.schedule.lateness",
            unit="s",
            description="How long after its due time a job ran",
        )
        self._failures = meter.create_counter(
            "studyhall.schedule.failures", description="Job runs that failed and were retried"
        )
        self._attributes = {"service": service}
        for kind in self.handlers:
            # Present from the start, so a dashboard shows zero rather than nothing.
            self._failures.add(0, {**self._attributes, "kind": kind})

    def wake(self) -> None:
        """Look for due work now (a job was just set for soon in this process)."""
        self._wake.set()

    async def run(self) -> None:
        """The background loop of a serving process: a read to learn when the next job is
        due, and a write transaction only when one is."""
        while True:
            # Cleared before looking, so a wake during the look is not lost.
            self._wake.clear()
            pause = self.poll_seconds
            try:
                due = await self._next_due()
                if due is not None and due <= datetime.now(UTC):
                    if await self.run_due() > 0:
                        continue
                    # Due but claimed by another replica (or failing): look again later.
                elif due is not None:
                    pause = min(pause, (due - datetime.now(UTC)).total_seconds())
            except Exception:
                # The database may be down; the next poll tries again.
                log.exception("scheduler could not look for due jobs")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(pause, 0.0))

    async def run_due(self, now: datetime | None = None) -> int:
        """Claims up to `batch` due jobs and runs them in one transaction; how many ended
        (ran, or were refused by their handler). When a handler fails, that transaction is
        rolled back and the claimed jobs run again one transaction each, so the failure is
        only its own job's."""
        moment = now or datetime.now(UTC)
        try:
            async with self.database.write() as session:
                claimed = await self._claim(session, moment, self.batch)
                ended = [job_id for job_id, job in claimed if await self._run(session, job)]
                await self._end(session, ended)
        except _HandlerFailed:
            ended = []
            async with self.database.write() as session:
                claimed = await self._claim(session, moment, self.batch)
            for job_id, _job in claimed:
                if await self._run_alone(job_id, moment):
                    ended.append(job_id)
        if claimed:
            self.on_commit()
        return len(ended)

    async def _claim(
        self, session: AsyncSession, moment: datetime, limit: int, job_id: str | None = None
    ) -> list[tuple[str, Job]]:
        table = self.table
        query = select(table).where(table.c.due_at <= moment)
        if job_id is not None:
            query = query.where(table.c.id == job_id)
        rows = await session.execute(
            query.order_by(table.c.due_at, table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [
            (row.id, Job(row.kind, row.key, row.community_id, utc(row.due_at), int(row.attempts)))
            for row in rows
        ]

    async def _run(self, session: AsyncSession, job: Job) -> bool:
        """Runs one job's handler; whether the job ended. A handler refuses (DomainError)
        before it writes, so a refusal needs no savepoint; any other error fails the batch."""
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for scheduled {job.kind!r} jobs")
            await handler(session, job)
        except DomainError as refusal:
            # The work no longer applies (its record changed meanwhile): the job ends.
            log.info("scheduled %s %s ended unrun: %s", job.kind, job.key, refusal)
            return True
        except Exception as error:
            raise _HandlerFailed(job) from error
        lateness = (datetime.now(UTC) - job.due_at).total_seconds()
        self._lateness.record(max(lateness, 0.0), {**self._attributes, "kind": job.kind})
        return True

    async def _run_alone(self, job_id: str, moment: datetime) -> bool:
        try:
            async with self.database.write() as session:
                claimed = await self._claim(session, moment, 1, job_id)
                for _, job in claimed:
                    await self._run(session, job)
                    await self._end(session, [job_id])
                return bool(claimed)
        except _HandlerFailed as failed:
            await self._retry_later(job_id, failed.job, failed.__cause__)
            return False

    async def _retry_later(self, job_id: str, job: Job, error: BaseException | None) -> None:
        table = self.table
        attempts = job.attempts + 1
        backoff = min(timedelta(seconds=2 ** min(attempts - 1, 12)), MAX_BACKOFF)
        async with self.database.write() as session:
            await session.execute(
                update(table)
                .where(table.c.id == job_id)
                .values(
                    attempts=attempts,
                    due_at=datetime.now(UTC) + backoff,
                    last_error=f"{type(error).__name__}: {error}"[:2000],
                )
            )
        self._failures.add(1, {**self._attributes, "kind": job.kind})
        log.error(
            "scheduled %s %s failed; retrying in %s", job.kind, job.key, backoff, exc_info=error
        )

    async def _end(self, session: AsyncSession, job_ids: list[str]) -> None:
        if job_ids:
            await session.execute(delete(self.table).where(self.table.c.id.in_(job_ids)))

    async def _next_due(self) -> datetime | None:
        async with self.database.read() as session:
            due = await session.scalar(select(func.min(self.table.c.due_at)))
        return None if due is None else utc(due)
