"""Many rows in one INSERT ... ON CONFLICT statement, built once per table and dialect.

`upsert_newer` is how projections tolerate reordering: a row is replaced only by a newer
version of it (docs/decisions/0005). `upsert` replaces unconditionally. `upsert_only`
inserts whole rows but, for a row that exists, changes only some of its columns: facts
that describe one part of a row with a version of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import insert_for

_STATEMENTS: dict[
    tuple[str, str, tuple[str, ...], tuple[str, ...], str | None, tuple[str, ...] | None], Any
] = {}


async def upsert(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """Insert `rows`, replacing any existing row with the same keys."""
    await _upsert(session, table, rows, keys, version=None)


async def upsert_newer(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    version: str = "version",
) -> None:
    """Insert `rows`, or replace existing ones whose `version` is older, in one statement."""
    await _upsert(session, table, rows, keys, version=version)


async def upsert_only(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    columns: Sequence[str],
    *,
    newer: str | None = None,
) -> None:
    """Insert `rows`; where a row exists, set only `columns` (when `newer` names a column:
    only if the row's value of it is older)."""
    await _upsert(session, table, rows, keys, version=newer, only=tuple(columns))


async def _upsert(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    version: str | None,
    only: tuple[str, ...] | None = None,
) -> None:
    if not rows:
        return
    # One statement may not touch a row twice: of several rows for a key, the last wins,
    # or the newest version when versions decide.
    chosen: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in keys)
        if version is None or key not in chosen or chosen[key][version] < row[version]:
            chosen[key] = row
    dialect = session.get_bind().dialect.name
    columns = tuple(rows[0])
    cache_key = (dialect, table.name, tuple(keys), columns, version, only)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        insert: Any = insert_for(dialect)
        base = insert(table)
        statement = base.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: base.excluded[name] for name in (only or columns) if name not in keys},
            where=(table.c[version] < base.excluded[version]) if version else None,
        )
        _STATEMENTS[cache_key] = statement
    await session.execute(statement, list(chosen.values()))
