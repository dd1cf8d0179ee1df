"""Fixtures of the service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from services.kit.events.connection import servers
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from tests.support import rpcs_content
from tests.support.catalogue import STORES, new_database, serve
from tests.support.services import RunningService, running_service


@pytest.fixture(autouse=True)
async def fresh_jetstream(nats_url: str) -> None:
    """Every service test starts with no streams on the run's nats-server.

    The durable consumers' names are fixed, as in production: without this, a test's
    consumer would first work through every event the tests before it published, and a test
    waiting for its own events' effects would wait for all of theirs.
    """
    connection = await nats.connect(servers(nats_url))
    try:
        jetstream = connection.jetstream()
        for stream in await jetstream.streams_info():
            if stream.config.name:
                await jetstream.delete_stream(stream.config.name)
    finally:
        await connection.close()


@pytest.fixture
async def members(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    """The members service on the store under test, with real NATS and Redis."""
    async with running_service(
        MEMBERS,
        MembersSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running


@pytest.fixture(scope="module", params=STORES)
async def content(
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningService]:
    """One content service per store for a module; each test works in communities of its
    own. No relay runs, so the facts stay in the outbox table for the tests to read."""
    directory = tmp_path_factory.mktemp(f"content-{request.param}")
    with new_database(str(request.param), request, directory) as database_url:
        async with serve(
            rpcs_content.PROCESS,
            database_url=database_url,
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=directory,
        ) as running:
            yield running
