"""Write a new Alembic revision for a service from the difference between its tables and
its migrations so far: `python scripts/new_migration.py members "add invites"`."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from alembic import command

from services.kit.database import Database
from services.kit.migrations import alembic_config, migrate

ROOT = Path(__file__).resolve().parent.parent


async def main(service: str, message: str) -> None:
    script_location = ROOT / "services" / service / "store" / "migrations"
    with tempfile.TemporaryDirectory() as scratch:
        database = Database(f"sqlite+aiosqlite:///{scratch}/scratch.db")
        await migrate(database, script_location, service=service)
        config = alembic_config(script_location)
        versions = sorted((script_location / "versions").glob("[0-9]*.py"))
        number = f"{len(versions) + 1:04d}"

        def revise(connection: object) -> None:
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True, rev_id=number)

        async with database.writer.connect() as connection:
            await connection.run_sync(revise)
        await database.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
