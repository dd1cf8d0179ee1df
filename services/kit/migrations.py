"""Alembic migrations, run by the service at start.

SQLite migrations use batch mode (it cannot ALTER most things in place); PostgreSQL
migrations run under a transaction-scoped advisory lock so replicas starting together
migrate once and the others wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from services.kit.database import Database

_in_process = asyncio.Lock()


def alembic_config(script_location: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    return config


async def migrate(
    database: Database, script_location: Path, *, service: str, revision: str = "head"
) -> None:
    config = alembic_config(script_location)
    lock_key = _lock_key(service)
    # Alembic keeps its context in module globals, so one process migrates one database at
    # a time; across processes the database's own lock does the serializing.
    async with _in_process, _sqlite_file_lock(database), database.writer.connect() as connection:
        if not database.is_sqlite:
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
        await connection.run_sync(_upgrade, config, revision)
        await connection.commit()


@contextlib.asynccontextmanager
async def _sqlite_file_lock(database: Database) -> AsyncIterator[None]:
    """An exclusive lock on `<database>.migrate.lock` for the whole upgrade.

    SQLite's write lock is not enough: alembic does not run SQLite DDL in one transaction,
    so a replica could take the lock between two migrations of another and both would
    apply the later ones. Every SQLite replica shares one host, so a file lock serializes
    them."""
    path = database.url.database if database.is_sqlite else None
    if not path or path == ":memory:":
        yield
        return
    descriptor = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def run_env(metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    connection: Any = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through services.kit.migrations.migrate()")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"studyhall-migrations:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
