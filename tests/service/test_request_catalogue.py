"""The request catalogue (tests/support/catalogue.py) stays complete and valid.

Complete: every method of every gRPC service a process serves has exactly one entry, and no
entry names a method that does not exist. Valid: on one running service per process and
store, the world is prepared once and every entry's request, sent by its caller (the world's
owner, or an operator where the owner cannot), succeeds, in catalogue order, and changes the
service's database if and only if the entry says it writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from tests.support import rpcs_analytics, rpcs_billing, rpcs_content, rpcs_events, rpcs_members
from tests.support.catalogue import (
    STORES,
    Process,
    World,
    changed_tables,
    new_database,
    serve,
    snapshot,
)
from tests.support.services import RunningService

pytestmark = pytest.mark.service

PROCESSES = [
    rpcs_members.PROCESS,
    rpcs_content.PROCESS,
    rpcs_events.PROCESS,
    rpcs_billing.PROCESS,
    rpcs_analytics.PROCESS,
]


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
def test_every_method_served_has_exactly_one_entry(process: Process) -> None:
    served = {(s.full_name, m.name) for s in process.services for m in s.methods}
    listed = [(rpc.service.full_name, rpc.method) for rpc in process.catalogue]
    assert sorted(served - set(listed)) == [], "methods without a catalogue entry"
    assert sorted(set(listed) - served) == [], "entries naming no method the process serves"
    assert len(listed) == len(set(listed)), "methods with more than one entry"
    for rpc in process.catalogue:
        assert rpc.method in rpc.service.methods_by_name, rpc.name


@dataclass
class Served:
    process: Process
    running: RunningService
    world: World


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
async def served(
    process: Process,
    store: str,
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Served]:
    """The process on a new database of the store, and its world: one per module."""
    directory = tmp_path_factory.mktemp(f"{process.name}-{store}")
    with new_database(store, request, directory) as database_url:
        async with serve(
            process,
            database_url=database_url,
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=directory,
        ) as running:
            yield Served(process, running, await process.prepare(running, None))


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name, scope="module")
async def test_every_request_of_the_catalogue_succeeds(served: Served) -> None:
    """...and changes the database exactly when the entry says it writes."""
    running, world, tables = served.running, served.world, served.process.metadata
    failed: list[str] = []
    for rpc in served.process.catalogue:
        request = rpc.request(world)
        assert isinstance(request, rpc.request_type), f"{rpc.name}: not its request type"
        before = await snapshot(running, tables)
        try:
            response = await rpc.call(running.channel, request, rpc.metadata(running, world))
        except grpc.aio.AioRpcError as error:
            failed.append(
                f"{rpc.name} as {rpc.caller.value}: {error.code().name} {error.details()}"
            )
            continue
        assert isinstance(response, rpc.response_type), rpc.name
        changed = changed_tables(before, await snapshot(running, tables))
        if rpc.writes and not changed:
            failed.append(f"{rpc.name} is listed as writing but changed nothing")
        if changed and not rpc.writes:
            failed.append(f"{rpc.name} is listed as reading but changed {changed}")
    assert failed == []
