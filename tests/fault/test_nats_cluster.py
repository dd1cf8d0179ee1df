"""The harness's three-node JetStream cluster keeps what it acknowledged when nodes die.

A service's stream is created as the services create theirs (`ensure_stream` with three
replicas); a publisher writes through the cluster's URL while the stream's leader is
SIGKILLed, a follower is SIGKILLed, and a node is restarted; every acknowledged message is
in the stream afterwards, once, in order, on every replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, NoStreamResponseError

from services.kit.events.connection import connect
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream
from tests.harness.cluster import NatsCluster, local_cluster
from tests.harness.servers import find_nats_server

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

STREAM = "STUDYHALL_CLUSTERTEST"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    binary, passed_over = find_nats_server()
    assert binary is not None, passed_over
    with local_cluster(binary, Path(tmp_path_factory.mktemp("cluster"))) as handle:
        yield handle


async def _publish_until(
    js: nats.js.JetStreamContext, acked: list[int], stop: asyncio.Event
) -> int:
    """Publish numbered messages until `stop`; keep the numbers the cluster acknowledged.
    A message whose ack did not come is retried with the same id (the dedupe window keeps
    it once), as the outbox relay does."""
    attempts = 0
    n = 0
    while not stop.is_set():
        n += 1
        while True:
            attempts += 1
            try:
                await js.publish(
                    "studyhall.clustertest.v1.Tick",
                    str(n).encode(),
                    headers={"Nats-Msg-Id": f"tick-{n}"},
                    timeout=2.0,
                )
                acked.append(n)
                break
            except (NatsTimeout, NoRespondersError, NoStreamResponseError, APIError, TimeoutError):
                await asyncio.sleep(0.05)
    return attempts


async def _stored(url: str) -> list[int]:
    nc = await connect(url, "cluster-check")
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("", stream=STREAM)
        seen: list[int] = []
        while True:
            try:
                msgs = await sub.fetch(500, timeout=2.0)
            except NatsTimeout:
                return seen
            for msg in msgs:
                seen.append(int(msg.data))
                await msg.ack()
    finally:
        await nc.close()


def test_acknowledged_messages_survive_the_leader_a_follower_and_a_restart(
    cluster: NatsCluster,
) -> None:
    async def run() -> tuple[list[int], list[str]]:
        nc = await connect(cluster.url, "cluster-publisher")
        js = nc.jetstream()
        config = service_stream("clustertest", StreamLimits(replicas=3))
        await ensure_stream(js, config)
        acked: list[int] = []
        stop = asyncio.Event()
        publisher = asyncio.create_task(_publish_until(js, acked, stop))
        killed: list[str] = []
        try:
            for _ in range(2):  # the leader, twice: a new one is elected each time
                await asyncio.sleep(1.0)
                leader = cluster.stream_leader(STREAM)
                leader.kill()
                killed.append(f"leader {leader.name}")
                await asyncio.sleep(1.5)
                leader.start()
            await asyncio.sleep(1.0)
            leader = cluster.stream_leader(STREAM)
            follower = next(n for n in cluster.nodes if n is not leader)
            follower.kill()
            killed.append(f"follower {follower.name}")
            await asyncio.sleep(1.0)
            follower.start()
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await publisher
            await nc.close()
        return acked, killed

    acked, killed = asyncio.run(run())
    assert len(acked) > 50, acked[-5:]
    assert killed[:2] == [k for k in killed if k.startswith("leader")]
    # Every replica catches up, and the stream holds each acknowledged message once, in order.
    deadline = time.monotonic() + 30
    while True:
        reports = [node.jsz(streams="true") for node in cluster.nodes]
        counts = [
            d["state"]["messages"]
            for r in reports
            for a in r.get("account_details") or []
            for d in a.get("stream_detail") or []
            if d["name"] == STREAM
        ]
        if len(counts) == 3 and len(set(counts)) == 1 and counts[0] >= len(acked):
            break
        assert time.monotonic() < deadline, counts
        time.sleep(0.5)
    stored = asyncio.run(_stored(cluster.url))
    assert stored == sorted(set(stored)), "a message twice or out of order"
    assert set(acked) <= set(stored)
