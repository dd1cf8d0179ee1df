"""Every service's migrations build exactly the tables its code declares, on both stores: a
column added to `tables.py` without a migration (or the reverse) fails here, not in
production."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.kit.database import Database
from services.kit.migrations import migrate

pytestmark = pytest.mark.service

SERVICES = ("members", "content", "events", "billing", "analytics")


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_build_the_declared_tables(database_url: str, service: str) -> None:
    spec = importlib.import_module(f"services.{service}.app").SPEC
    metadata = importlib.import_module(f"services.{service}.store.tables").metadata
    database = Database(database_url)
    try:
        await migrate(database, Path(spec.migrations), service=service)

        def differences(connection: Any) -> list[Any]:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            found = compare_metadata(context, metadata)
            # SQLite reports server defaults and some types loosely; names and columns are
            # what must agree.
            return [
                change
                for change in found
                if not (isinstance(change, list) and change and change[0][0] == "modify_default")
                and not _store_specific(change)
            ]

        async with database.writer.connect() as connection:
            found = await connection.run_sync(differences)
        assert found == [], f"{service}: migrations and tables.py disagree: {found}"
    finally:
        await database.close()


def _store_specific(change: Any) -> bool:
    """Content's search index is built by its migrations alone: an FTS5 table on SQLite (and
    the tables FTS5 keeps for it), a stored tsvector column and its index on PostgreSQL."""
    if not isinstance(change, tuple):
        return False
    if change[0] == "remove_table":
        return bool(change[1].name.startswith("search_fts"))
    if change[0] == "remove_column":
        return bool(change[2] == "search_documents" and change[3].name == "terms_vector")
    return bool(change[0] == "remove_index" and change[1].name == "ix_search_documents_vector")
