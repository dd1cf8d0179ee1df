"""The service's own database: SQLite (embedded default) or PostgreSQL (production).

SQLite gets WAL, full sync (an acknowledged write survives a crash) and two engines: writers
take the write lock up front with BEGIN IMMEDIATE, through a single connection so writers in
one process queue instead of failing with SQLITE_BUSY; readers use their own pool and never
wait on a writer.

The writer's statements run on the event loop's thread rather than on aiosqlite's worker
thread (decision 0009): a write transaction is a handful of indexed statements of tens of
microseconds each, while every hand-over to a thread and back costs a few hundred
microseconds, and a transaction made dozens of them while holding the only write lock.
Waiting for the lock held by another process is the one slow part, and it is awaited, not
blocked on: BEGIN IMMEDIATE is retried with asyncio.sleep.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# How soon a writer looks again for the write lock another process holds, doubling up to the
# longest wait. Other processes hold it for a few milliseconds (one transaction), so a long
# wait only adds latency; a look that fails costs a few microseconds.
SQLITE_LOCK_FIRST_WAIT = 0.0005
SQLITE_LOCK_LONGEST_WAIT = 0.004
# A PostgreSQL connection back in the pool for longer than this is pinged before it is used.
POSTGRES_PING_AFTER_IDLE_SECONDS = 5.0


def normalize_url(url: str) -> URL:
    """Accept plain `sqlite://` and `postgresql://` URLs and pick the async driver."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(f"unsupported database driver {parsed.drivername!r}")
    return parsed


class Database:
    def __init__(
        self,
        url: str,
        *,
        tls_mode: str = "prefer",
        tls_root_cert: Path | None = None,
        pool_size: int = 10,
    ) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.drivername.startswith("sqlite")
        if self.is_sqlite:
            self._prepare_sqlite_file()
            path = self.url.database or ":memory:"
            self.writer = create_async_engine(
                self.url,
                pool_size=1,
                max_overflow=0,
                async_creator=lambda: InlineSqlite.open(path),
            )
            self.reader = create_async_engine(self.url, pool_size=pool_size, max_overflow=0)
            _tune_sqlite(self.writer, begin="BEGIN IMMEDIATE", busy_timeout_ms=0)
            _tune_sqlite(self.reader, begin="BEGIN", busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)
        else:
            self.writer = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                connect_args={
                    "ssl": _pg_ssl(tls_mode, tls_root_cert),
                    # JIT compiles any plan whose estimate is high, even one that ends in a few
                    # milliseconds: a search whose fallback branch is never run paid 44 ms of
                    # compilation for a 20 ms query. Nothing here scans enough to win it back.
                    "server_settings": {"jit": "off"},
                },
            )
            self.reader = self.writer
            _ping_when_idle(self.writer)
        _trace_statements(self.writer, self.dialect, self.url)
        if self.reader is not self.writer:
            _trace_statements(self.reader, self.dialect, self.url)
        self._write_sessions = async_sessionmaker(self.writer, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.reader, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block ends and rolls back on an exception."""
        async with self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        async with self.reader.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    async def close(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()

    def _prepare_sqlite_file(self) -> None:
        database = self.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)


async def insert_all(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert `rows` (each naming the same columns) the fastest way the store takes them:
    COPY through asyncpg on PostgreSQL, one executemany on SQLite. No conflict handling:
    for a table nobody else writes (a store being rebuilt, a benchmark's copy)."""
    if not rows:
        return
    columns = list(rows[0])
    raw = await (await session.connection()).get_raw_connection()
    if isinstance(raw.driver_connection, InlineSqlite):
        # The writer's own sqlite3 connection, in the session's transaction: SQLAlchemy's
        # executemany spends more on each row's parameters than SQLite spends on the row.
        dialect = session.get_bind().dialect
        quote = dialect.identifier_preparer.quote
        sql = (
            f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
            f"({', '.join(quote(name) for name in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        convert = [
            (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in columns
        ]
        raw.driver_connection.sqlite.executemany(
            sql,
            (
                tuple(row[name] if to is None else to(row[name]) for name, to in convert)
                for row in rows
            ),
        )
        return
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(table.insert(), list(rows))
        return
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table.name,
        records=[tuple(row[name] for name in columns) for row in rows],
        columns=columns,
        schema_name=table.schema,
    )


def insert_for(dialect: str) -> Any:
    """The `insert` construct of `dialect` ("postgresql" or "sqlite"): the one with
    ON CONFLICT clauses both stores understand."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def utc(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def connection_lost(error: BaseException) -> bool:
    """The database connection broke under a statement (the server restarted, the network
    dropped): the pool has discarded it, and the same work on a new one may well succeed."""
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's pre-ping checks every checkout, and asyncpg's ping costs three round
    trips (BEGIN, an empty statement, ROLLBACK): as many as the rest of a small transaction,
    under load most of a consumer's socket writes. A connection back in the pool a moment ago
    is alive all but always; what pre-ping guards against (a restarted server, a proxy's idle
    timeout) strikes connections left idle. So only a connection idle for
    POSTGRES_PING_AFTER_IDLE_SECONDS is pinged; one that dies in between fails its statement
    as a disconnect, which discards the whole pool (a transient error: consumers retry)."""

    @event.listens_for(engine.sync_engine, "connect")
    def connected(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkin")
    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since", 0.0)
        if time.monotonic() - idle_since < POSTGRES_PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool replaces the connection and tries again (up to three times).
            raise DisconnectionError(f"a pooled connection is gone: {error!r}") from error


def _tune_sqlite(engine: AsyncEngine, *, begin: str, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself instead of the driver's
        # implicit deferred BEGIN, so writers can take the lock at the start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


_TRACER = trace.get_tracer("studyhall.database")
# The operation and the table a statement names first: `INSERT INTO memberships ...` is
# (INSERT, memberships); a statement it cannot read is named by its first word alone.
_STATEMENT = re.compile(
    r"^\s*(?P<operation>\w+)(?:.*?\b(?:FROM|INTO|UPDATE|TABLE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?\"?(?P<table>[\w.]+))?",
    re.IGNORECASE | re.DOTALL,
)
# Where a statement's span waits for the statement to end: on its execution context.
_SPAN_KEY = "_studyhall_span"


def _take_span(context: Any) -> trace.Span | None:
    span: trace.Span | None = getattr(context, _SPAN_KEY, None)
    if span is not None:
        setattr(context, _SPAN_KEY, None)
    return span


def _trace_statements(engine: AsyncEngine, system: str, url: URL) -> None:
    """A CLIENT span per statement, with the current database semantic conventions, as a
    child of the span that is current (the RPC's server span, a consumer's `process` span).

    Outside any span, as in the relay's and the consumers' polling loops, a statement gets
    no span: one would start a trace of its own with no cause (an orphan), and a loop that
    polls every few hundred milliseconds would fill the trace backend with them."""
    base: dict[str, Any] = {"db.system.name": system}
    if url.database:
        base["db.namespace"] = url.database if system == "postgresql" else Path(url.database).name
    if system == "postgresql" and url.host:
        base["server.address"] = url.host
        base["server.port"] = url.port or 5432

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def before(
        _connection: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if context is None or not trace.get_current_span().is_recording():
            return
        match = _STATEMENT.match(statement)
        operation = match.group("operation").upper() if match else ""
        table = match.group("table") if match and operation != "BEGIN" else None
        attributes = {**base, "db.query.text": statement}
        if operation:
            attributes["db.operation.name"] = operation
        if table:
            attributes["db.collection.name"] = table
        if executemany:
            attributes["db.operation.batch.size"] = len(_parameters)
        name = " ".join(part for part in (operation, table) if part) or system
        span = _TRACER.start_span(
            name, context=otel_context.get_current(), kind=SpanKind.CLIENT, attributes=attributes
        )
        setattr(context, _SPAN_KEY, span)

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def after(
        _connection: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any, _many: bool
    ) -> None:
        span = _take_span(context)
        if span is not None:
            span.end()

    @event.listens_for(engine.sync_engine, "handle_error")
    def failed(error_context: Any) -> None:
        span = _take_span(error_context.execution_context)
        if span is not None:
            error = error_context.original_exception
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
            span.end()


def _pg_ssl(mode: str, root_cert: Path | None) -> Any:
    if mode in ("disable", "prefer", "require") and root_cert is None:
        return mode
    context = ssl.create_default_context(cafile=str(root_cert) if root_cert else None)
    if mode in ("require", "verify-ca"):
        context.check_hostname = False
    return context


class _RunNow:
    """Stands in for aiosqlite's queue to its worker thread: runs the call at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:
            if future is not None:
                future.set_exception(error)
            return
        if future is not None:
            future.set_result(result)


class InlineSqlite(aiosqlite.Connection):
    """aiosqlite's connection, with every call run on the caller's thread (see the module
    docstring). Only for the single writer connection."""

    @classmethod
    async def open(cls, path: str) -> InlineSqlite:
        def connector() -> sqlite3.Connection:
            # The pool may close the connection from another thread at shutdown.
            return sqlite3.connect(path, check_same_thread=False, isolation_level=None)

        connection = cls(connector, iter_chunk_size=64)
        connection._tx = _RunNow()  # type: ignore[assignment]
        connection._connection = connector()
        return connection

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = SQLITE_LOCK_FIRST_WAIT
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as error:
                # Another process holds the write lock: wait for it without blocking the loop.
                taking_lock = bool(args) and str(args[0]).startswith("BEGIN")
                if "locked" not in str(error) or not taking_lock or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, SQLITE_LOCK_LONGEST_WAIT)

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection itself, for work SQLAlchemy would only slow down."""
        if self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()

    def __await__(self) -> Any:
        async def itself() -> InlineSqlite:
            return self

        return itself().__await__()
