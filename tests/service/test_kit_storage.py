"""The embedded store is tuned for durability and concurrent writers; migrations are safe
when replicas start together."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, Table, func, select, text
from sqlalchemy.exc import DBAPIError

from services.kit import database as kit_database
from services.kit.database import Database
from services.kit.migrations import alembic_config, migrate
from tests.harness.servers import PostgresHandle

pytestmark = pytest.mark.service

MEMBERS_MIGRATIONS = Path(__file__).parents[2] / "services" / "members" / "store" / "migrations"


async def test_sqlite_runs_in_wal_mode_with_full_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with database.write() as session:
            mode = await session.scalar(text("PRAGMA journal_mode"))
            synchronous = await session.scalar(text("PRAGMA synchronous"))
            writer_timeout = await session.scalar(text("PRAGMA busy_timeout"))
        async with database.read() as session:
            reader_timeout = await session.scalar(text("PRAGMA busy_timeout"))
        assert mode == "wal"
        assert synchronous == 2  # FULL
        # The writer never blocks the event loop on the lock: it awaits and retries instead.
        assert writer_timeout == 0
        assert reader_timeout == 10_000
    finally:
        await database.close()


async def test_a_writer_waits_for_another_process_lock_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with database.write() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async def write() -> None:
            async with database.write() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))

        ticking = asyncio.create_task(ticker())
        writing = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not writing.done()
        other.execute("COMMIT")
        await asyncio.wait_for(writing, timeout=5)
        ticking.cancel()
        # The loop kept running while the write waited for the lock (about 30 ticks).
        assert ticks >= 15
        async with database.read() as session:
            assert await session.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        other.close()
        await database.close()


async def test_concurrent_writers_in_two_processes_worth_of_engines_do_not_fail(
    tmp_path: Path,
) -> None:
    # Two Database objects on one file stand for two processes: BEGIN IMMEDIATE plus the
    # busy timeout make the second writer wait for the lock instead of failing mid-way.
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    metadata = MetaData()
    counter = Table(
        "counter", metadata, Column("id", Integer, primary_key=True), Column("n", Integer)
    )
    first, second = Database(url), Database(url)
    try:
        async with first.writer.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with first.write() as session:
            await session.execute(counter.insert().values(id=1, n=0))

        async def bump(database: Database) -> None:
            for _ in range(25):
                async with database.write() as session:
                    value = await session.scalar(select(counter.c.n).where(counter.c.id == 1))
                    await session.execute(counter.update().values(n=(value or 0) + 1))

        await asyncio.gather(bump(first), bump(second), bump(first), bump(second))
        async with first.read() as session:
            assert await session.scalar(select(counter.c.n)) == 100
    finally:
        await first.close()
        await second.close()


MIGRATE = """
import asyncio, sys
from pathlib import Path
from services.kit.database import Database
from alembic.script import ScriptDirectory

from services.kit.migrations import alembic_config, migrate
from tests.harness.servers import PostgresHandle

async def main():
    database = Database(sys.argv[1])
    await migrate(database, Path(sys.argv[2]), service="members")
    await database.close()

asyncio.run(main())
"""


async def test_replicas_migrating_together_migrate_once(database_url: str) -> None:
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE,
            database_url,
            str(MEMBERS_MIGRATIONS),
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for replica in replicas:
        _, stderr = await replica.communicate()
        assert replica.returncode == 0, stderr.decode()
    database = Database(database_url)
    try:
        async with database.read() as session:
            versions = (
                await session.execute(text("SELECT version_num FROM alembic_version"))
            ).all()
            communities = await session.scalar(
                select(func.count()).select_from(text("communities"))
            )
        assert len(versions) == 1
        assert communities == 0
    finally:
        await database.close()


async def test_migrating_an_up_to_date_database_changes_nothing(database_url: str) -> None:
    database = Database(database_url)
    try:
        await migrate(database, MEMBERS_MIGRATIONS, service="members")
        await migrate(database, MEMBERS_MIGRATIONS, service="members")
        async with database.read() as session:
            versions = (
                await session.execute(text("SELECT version_num FROM alembic_version"))
            ).all()
        head = ScriptDirectory.from_config(alembic_config(MEMBERS_MIGRATIONS)).get_current_head()
        assert [row[0] for row in versions] == [head]
    finally:
        await database.close()


async def _backend_of(database: Database) -> int:
    async with database.read() as session:
        return int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)


async def test_a_postgresql_connection_cut_while_idle_is_replaced_before_use(
    postgres_database: tuple[PostgresHandle, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, name = postgres_database
    database = Database(server.database_url(name), pool_size=1)
    try:
        backend = await _backend_of(database)
        server.cut_connections(name)
        # Idle long enough to be pinged (as a connection a restarted server dropped would be).
        monkeypatch.setattr(kit_database, "POSTGRES_PING_AFTER_IDLE_SECONDS", 0.0)
        assert await _backend_of(database) not in (0, backend)
    finally:
        await database.close()


async def test_a_postgresql_connection_back_a_moment_ago_is_used_without_a_ping(
    postgres_database: tuple[PostgresHandle, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, name = postgres_database
    database = Database(server.database_url(name), pool_size=1)
    pings = 0
    async with database.writer.connect() as connection:
        connection_type: Any = type((await connection.get_raw_connection()).dbapi_connection)
    ping = connection_type.ping

    def counted(self: object) -> None:
        nonlocal pings
        pings += 1
        ping(self)

    monkeypatch.setattr(connection_type, "ping", counted)
    try:
        backends = {await _backend_of(database) for _ in range(5)}
    finally:
        await database.close()
    assert pings == 0
    assert len(backends) == 1


async def test_a_postgresql_connection_cut_while_in_use_fails_once_and_the_pool_recovers(
    postgres_database: tuple[PostgresHandle, str],
) -> None:
    server, name = postgres_database
    database = Database(server.database_url(name), pool_size=1)
    try:
        backend = await _backend_of(database)
        server.cut_connections(name)
        with pytest.raises(DBAPIError) as failure:
            await _backend_of(database)
        assert failure.value.connection_invalidated
        assert await _backend_of(database) not in (0, backend)
    finally:
        await database.close()
