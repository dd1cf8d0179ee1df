"""Apply the database migrations of Studyhall services, then exit (the Kubernetes Job).

    python /app/deploy/migrate.py [SERVICE ...]      default: all five services

Each service reads its own STUDYHALL_<SERVICE>_DATABASE_URL (and _DATABASE_TLS...), exactly as
the service process does. Services also migrate when they start, under a PostgreSQL
advisory lock, so running this is never required for correctness: it moves the schema
change in front of a rollout, so new pods become ready at once and a failing migration
stops the rollout instead of a crowd of pods retrying it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys

SERVICES = ("members", "content", "events", "billing", "analytics")


async def migrate_service(name: str) -> None:
    from services.kit.database import Database
    from services.kit.migrations import migrate
    from services.kit.settings import ServiceSettings, env_name, load_settings

    app = importlib.import_module(f"services.{name}.app")
    module = importlib.import_module(f"services.{name}.settings")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value.service == name
    ]
    if len(classes) != 1:
        raise SystemExit(f"migrate: cannot find the settings class of {name}")
    settings = load_settings(classes[0])
    if not settings.database_url:
        raise SystemExit(
            f"migrate: {env_name(classes[0], 'database_url')} is not set; a migrations job "
            "has nothing to do for a SQLite file inside its own container"
        )
    database = Database(
        settings.effective_database_url(),
        tls_mode=settings.database_tls,
        tls_root_cert=settings.database_tls_root_cert,
    )
    try:
        await migrate(database, app.SPEC.migrations, service=name)
    finally:
        await database.close()


async def main(names: list[str]) -> None:
    for name in names:
        logging.info("migrating %s", name)
        await migrate_service(name)
        logging.info("%s is at head", name)


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(SERVICES)
    unknown = [name for name in chosen if name not in SERVICES]
    if unknown:
        raise SystemExit(f"migrate: unknown service(s) {unknown}; use {', '.join(SERVICES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(main(chosen))
