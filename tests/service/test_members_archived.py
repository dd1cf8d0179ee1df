"""An archived community takes no changes: every members RPC that writes is refused with
FAILED_PRECONDITION there and changes nothing, except leaving it and a member's own data
rights (export and erasure), which stay open. Reads keep answering.

Checked for every entry of the members request catalogue (tests/support/catalogue.py), so a
new RPC is covered by adding its entry: one running service per store, one world prepared
and then archived (the world's community and the communities its entries hand over or
archive).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support import rpcs_members
from tests.support.catalogue import (
    STORES,
    World,
    changed_tables,
    new_database,
    serve,
    snapshot,
)
from tests.support.services import RunningService

pytestmark = pytest.mark.service

PROCESS = rpcs_members.PROCESS
# What an archived community still allows: leaving it, and a member's data rights. Creating
# a community names none.
STILL_OPEN = {"LeaveCommunity", "ExportMyData", "EraseMyData", "CreateCommunity"}


@dataclass
class Archived:
    running: RunningService
    world: World


@pytest.fixture(scope="module", params=STORES)
async def archived(
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Archived]:
    directory = tmp_path_factory.mktemp(f"archived-{request.param}")
    with new_database(str(request.param), request, directory) as database_url:
        async with serve(
            PROCESS,
            database_url=database_url,
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=directory,
        ) as running:
            world = await PROCESS.prepare(running, None)
            stub = pb_grpc.MembersServiceStub(running.channel)
            for community_id in (
                world.community_id,
                world.handover_community_id,
                world.archive_community_id,
            ):
                await stub.ArchiveCommunity(
                    pb.ArchiveCommunityRequest(community_id=community_id),
                    metadata=running.auth(world.owner),
                )
            yield Archived(running, world)


async def test_every_change_is_refused_and_changes_nothing(archived: Archived) -> None:
    running, world = archived.running, archived.world
    wrong: list[str] = []
    for rpc in PROCESS.catalogue:
        if not rpc.writes or rpc.method in STILL_OPEN:
            continue
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


async def test_reads_leaving_and_data_rights_stay_open(archived: Archived) -> None:
    running, world = archived.running, archived.world
    failed: list[str] = []
    # Erasure last: it removes a member the other entries name.
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
