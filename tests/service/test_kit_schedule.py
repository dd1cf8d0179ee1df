"""The kit's scheduler on SQLite and PostgreSQL: a due job runs once and ends; a moved job
runs at its new time; a refusal ends a job, a failure retries it later; two schedulers on
one database (two replicas) split the due jobs and run each once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import Database
from services.kit.errors import FailedPrecondition
from services.kit.schedule import Job, Jobs, Scheduler, schedule_table

pytestmark = pytest.mark.service

metadata = MetaData()
jobs_table = schedule_table(metadata)
# What the jobs did: one row per run, so a second run of a job shows as a second row.
runs = Table("runs", metadata, Column("key", String(200), nullable=False))
JOBS = Jobs(jobs_table)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    async with database.writer.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.close()


async def record(session: AsyncSession, job: Job) -> None:
    await session.execute(runs.insert().values(key=job.key))


async def refuse(session: AsyncSession, job: Job) -> None:
    # A handler refuses before it writes.
    raise FailedPrecondition(f"{job.key} no longer applies")


async def fail(session: AsyncSession, job: Job) -> None:
    raise RuntimeError("the disk is full")


async def schedule(database: Database, kind: str, keys: list[str], due: datetime) -> None:
    async with database.write() as session:
        for key in keys:
            await JOBS.set(session, Job(kind, key, "c", due))


async def ran(database: Database) -> list[str]:
    async with database.read() as session:
        return sorted(str(key) for key in await session.scalars(select(runs.c.key)))


async def pending(database: Database) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(jobs_table)) or 0)


def scheduler(database: Database) -> Scheduler:
    return Scheduler(
        "test", database, jobs_table, {"record": record, "refuse": refuse, "fail": fail}
    )


async def test_a_due_job_runs_once_and_a_moved_one_at_its_new_time(database: Database) -> None:
    now = datetime.now(UTC)
    await schedule(database, "record", ["a", "b"], now - timedelta(seconds=1))
    await schedule(database, "record", ["later"], now + timedelta(hours=1))
    runner = scheduler(database)

    assert await runner.run_due() == 2
    assert await runner.run_due() == 0
    assert await ran(database) == ["a", "b"]

    # Moved to now: one job, run once.
    await schedule(database, "record", ["later"], now - timedelta(seconds=1))
    assert await pending(database) == 1
    assert await runner.run_due() == 1
    assert await ran(database) == ["a", "b", "later"]
    assert await pending(database) == 0


async def test_a_refusal_ends_its_job_and_a_failure_retries_it_later(database: Database) -> None:
    now = datetime.now(UTC)
    await schedule(database, "refuse", ["gone"], now - timedelta(seconds=1))
    await schedule(database, "fail", ["stuck"], now - timedelta(seconds=1))
    await schedule(database, "record", ["fine"], now - timedelta(seconds=1))

    assert await scheduler(database).run_due() == 2  # "fine" ran, "gone" was refused
    assert await ran(database) == ["fine"]
    async with database.read() as session:
        [row] = (await session.execute(select(jobs_table))).all()
    assert row.key == "stuck"
    assert row.attempts == 1
    assert "the disk is full" in row.last_error
    assert row.due_at.replace(tzinfo=UTC) > datetime.now(UTC)


async def test_a_cancelled_job_does_not_run(database: Database) -> None:
    await schedule(database, "record", ["x"], datetime.now(UTC) - timedelta(seconds=1))
    async with database.write() as session:
        assert await JOBS.cancel(session, "record", "x")
    assert await scheduler(database).run_due() == 0
    assert await ran(database) == []


async def test_two_replicas_split_the_due_jobs_and_run_each_once(
    database: Database, database_url: str
) -> None:
    # On SQLite, two Database objects on one file stand for two processes.
    keys = [f"job-{n:04d}" for n in range(600)]
    await schedule(database, "record", keys, datetime.now(UTC) - timedelta(seconds=1))
    other = Database(database_url)
    try:
        one, two = scheduler(database), scheduler(other)

        async def drain(runner: Scheduler) -> int:
            total = 0
            while (done := await runner.run_due()) > 0:
                total += done
            return total

        counts = await asyncio.gather(drain(one), drain(two), drain(one), drain(two))
    finally:
        await other.close()
    assert sum(counts) == len(keys)
    assert await ran(database) == keys
