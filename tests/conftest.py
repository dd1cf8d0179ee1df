"""Real servers for the whole run, a fresh database and fresh community ids for each test.

nats-server, Redis and PostgreSQL come from STUDYHALL_TEST_*_URL when set, otherwise are
started locally on free ports (see tests/harness/servers.py). They start once per run.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import NatsCluster
from tests.harness.servers import PostgresHandle, provide_nats, provide_postgres, provide_redis


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def nats_server(servers_dir: Path) -> Iterator[object]:
    with provide_nats(servers_dir / "nats") as handle:
        if isinstance(handle, NatsCluster):
            # Every service of the run (in this process or started from it) creates its
            # streams with three replicas, as the prod overlay does.
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("STUDYHALL_STREAM_REPLICAS", "3")
                yield handle
            return
        yield handle


@pytest.fixture(scope="session")
def nats_url(nats_server: object) -> str:
    return str(nats_server.url)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def redis_url(servers_dir: Path) -> Iterator[str]:
    with provide_redis(servers_dir / "redis") as handle:
        yield handle.url


@pytest.fixture(scope="session")
def postgres_server(servers_dir: Path) -> Iterator[object]:
    with provide_postgres(servers_dir / "postgres") as handle:
        yield handle


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database for this test, on each store the services support."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'service.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = "t_" + uuid.uuid4().hex[:16]
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    return directory


@pytest.fixture
def postgres_database(postgres_server: PostgresHandle) -> Iterator[tuple[PostgresHandle, str]]:
    """A new, empty PostgreSQL database: its server and its name, for a test of what only
    PostgreSQL does (server-side sessions, connections cut by the server)."""
    name = "t_" + uuid.uuid4().hex[:16]
    postgres_server.create_database(name)
    try:
        yield postgres_server, name
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def second_database_url(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """Another empty database on the same store, for a second service in the same test."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'second.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = "t_" + uuid.uuid4().hex[:16]
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


def _dump_tasks(*_: object) -> None:
    # `kill -USR1 <pytest pid>` shows where every asyncio task waits: the thread dump alone
    # only shows an idle event loop when a test hangs on an await.
    import asyncio
    import sys

    try:
        tasks = asyncio.all_tasks(asyncio.get_event_loop())
    except RuntimeError:
        return
    for task in tasks:
        print(f"--- {task.get_name()}", file=sys.stderr)
        task.print_stack(file=sys.stderr)


signal.signal(signal.SIGUSR1, _dump_tasks)
