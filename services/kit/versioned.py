"""Optimistic concurrency for versioned rows: a change lands only on the row it was decided
against.

Every change of a versioned row raises its version by exactly one. So a write can say what
it expects to find without carrying anything extra: a row of version N replaces the stored
row only while that one is still at N - 1, and a row of version 1 is new and replaces
nothing. On SQLite, writers queue and always find what they read; on PostgreSQL two
transactions may read the same row, and the second write finds the first's version instead
(its statement waits for the first to commit, then matches nothing). Either way the loser
raises `StaleWrite`, and `IdempotentWriter` runs its transaction again on fresh rows
(docs/decisions/0019-no-lost-update.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import insert_for


class StaleWrite(Exception):
    """A row changed (or appeared) after this transaction read it; run the transaction again."""


_STATEMENTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...], str], Any] = {}


async def save_versioned(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    version: str = "version",
) -> None:
    """Insert `rows`, or replace stored rows one version older, in one statement; raise
    StaleWrite when any row was not written."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    columns = tuple(rows[0])
    cache_key = (dialect, table.name, tuple(keys), columns, version)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        insert: Any = insert_for(dialect)
        base = insert(table)
        statement = base.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: base.excluded[name] for name in columns if name not in keys},
            where=table.c[version] == base.excluded[version] - 1,
        ).returning(*(table.c[name] for name in keys))
        _STATEMENTS[cache_key] = statement
    written = {tuple(row) for row in await session.execute(statement, list(rows))}
    wanted = {tuple(row[name] for name in keys) for row in rows}
    if len(wanted) != len(rows):
        raise ValueError(f"{table.name}: one statement cannot write a row twice")
    if written != wanted:
        missing = sorted(wanted - written)
        raise StaleWrite(f"{table.name} {missing[:3]} changed meanwhile")


async def update_versioned(
    session: AsyncSession,
    table: Table,
    row: Mapping[str, Any],
    keys: Sequence[str],
    *,
    version: str = "version",
) -> None:
    """Replace the stored row one version older than `row`; raise StaleWrite when it is not
    there at that version (changed or deleted meanwhile)."""
    statement = (
        table.update()
        .where(*(table.c[name] == row[name] for name in keys))
        .where(table.c[version] == row[version] - 1)
        .values(**{name: value for name, value in row.items() if name not in keys})
    )
    result = await session.execute(statement)
    if not getattr(result, "rowcount", 0):
        raise StaleWrite(f"{table.name} {tuple(row[name] for name in keys)} changed meanwhile")
