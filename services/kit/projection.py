"""Writing projections that tolerate reordering: a row is replaced only by a newer version
(docs/decisions/0005), many rows with one statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

_STATEMENTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


async def upsert_newer(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    version: str = "version",
) -> None:
    """Insert `rows`, or replace existing ones whose `version` is older, in one statement."""
    if not rows:
        return
    # One statement may not touch a row twice: of several versions of a key in one batch,
    # only the newest can win anyway.
    newest: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in keys)
        if key not in newest or newest[key][version] < row[version]:
            newest[key] = row
    dialect = session.get_bind().dialect.name
    columns = tuple(rows[0])
    cache_key = (dialect, table.name, tuple(keys), columns)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        base = insert(table)
        statement = base.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: base.excluded[name] for name in columns if name not in keys},
            where=table.c[version] < base.excluded[version],
        )
        _STATEMENTS[cache_key] = statement
    await session.execute(statement, list(newest.values()))
