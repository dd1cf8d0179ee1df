"""An archived community is read-only in events: every ActivitiesService RPC that writes is
refused with FAILED_PRECONDITION naming the archive and changes nothing, except a member's
own data rights (export and erasure), which stay open as they do in members. Reads keep
answering.

Checked for every entry of the events request catalogue (tests/support/rpcs_events.py), so
a new RPC is covered by adding its entry. The refusal reads the access projection, which is
the same on both stores: SQLite only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from sqlalchemy import update

from services.events.store.tables import access
from tests.support import rpcs_events
from tests.support.catalogue import World, changed_tables, serve, snapshot
from tests.support.services import RunningService

pytestmark = pytest.mark.service

PROCESS = rpcs_events.PROCESS
STILL_OPEN = {"ExportMyData", "EraseMyData"}


@dataclass
class Archived:
    running: RunningService
    world: World


@pytest.fixture(scope="module")
async def archived(
    redis_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Archived]:
    directory: Path = tmp_path_factory.mktemp("events-archived")
    async with serve(
        PROCESS,
        database_url=f"sqlite+aiosqlite:///{directory / 'events.db'}",
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=directory,
    ) as running:
        world = await PROCESS.prepare(running, None)
        # As the access consumer applies members' CommunityArchived.
        async with running.deps.database.write() as session:
            await session.execute(
                update(access.communities)
                .where(access.communities.c.community_id == world.community_id)
                .values(archived=True)
            )
        key = f"studyhall:events:standing:{world.community_id}:{world.owner}"
        await running.deps.redis.call(lambda client: client.delete(key), None)
        yield Archived(running, world)


async def test_every_change_is_refused_naming_the_archive_and_changes_nothing(
    archived: Archived,
) -> None:
    running, world = archived.running, archived.world
    wrong: list[str] = []
    checked = 0
    for rpc in PROCESS.catalogue:
        if not rpc.writes or rpc.method in STILL_OPEN:
            continue
        checked += 1
        before = await snapshot(running, PROCESS.metadata)
        try:
            await rpc.call(running.channel, rpc.request(world), rpc.metadata(running, world))
            wrong.append(f"{rpc.name} succeeded")
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                wrong.append(f"{rpc.name}: {error.code().name} {error.details()}")
            elif "archived" not in (error.details() or ""):
                wrong.append(f"{rpc.name}: refused without naming the archive: {error.details()}")
        changed = changed_tables(before, await snapshot(running, PROCESS.metadata))
        if changed:
            wrong.append(f"{rpc.name} changed {changed}")
    assert wrong == []
    assert checked >= 9


async def test_reads_and_data_rights_stay_open(archived: Archived) -> None:
    running, world = archived.running, archived.world
    failed: list[str] = []
    entries = sorted(
        (rpc for rpc in PROCESS.catalogue if not rpc.writes or rpc.method in STILL_OPEN),
        key=lambda rpc: rpc.method == "EraseMyData",
    )
    for rpc in entries:
        try:
            await rpc.call(running.channel, rpc.request(world), rpc.metadata(running, world))
        except grpc.aio.AioRpcError as error:
            failed.append(f"{rpc.name}: {error.code().name} {error.details()}")
    assert failed == []
