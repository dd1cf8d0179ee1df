"""The event backbone under faults, checked in the manner of Jepsen's queue checker.

Members (its API, and its outbox relay as a process of its own) and the analytics consumer
run as separate OS processes on a nats-server of this test's own. Concurrent clients commit
twenty thousand membership changes over gRPC while the relay and the consumer are each
SIGKILLed and restarted a dozen times (half at random moments, half aimed at work in
flight) and nats-server is SIGKILLed and restarted three times. When everything has caught
up, a tally read straight from both services' databases must show (DESIGN.md rules 3, 4)
nothing lost, nothing unexpected, no effect applied twice or out of order, the same member
counts on both sides, and, from JetStream, proof that the faults caused redeliveries.

The API process is not killed, so every call must get a certain answer: one whose outcome
is unknown (a timeout, say) is repeated with its request id until it has one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path

import grpc
import pytest

from services.analytics.consumers import MEMBERS as ANALYTICS_MEMBERS
from services.kit.auth import LocalSigner
from services.kit.database import Database
from services.kit.events.streams import stream_name
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.fault.membership_load import (
    CHANGES,
    COMMUNITIES,
    CONSUMER_KILLS,
    NATS_KILLS,
    RELAY_KILLS,
    Chaos,
    Ledger,
    broker_figures,
    create_communities,
    drive,
    kill_nats_repeatedly,
    kill_repeatedly,
    tally_of,
    wait_until_caught_up,
)
from tests.fault.support import (
    ConsumerWatch,
    ServiceProcess,
    service_environment,
    warning_counts,
)
from tests.harness.servers import provide_nats
from tests.support.services import wait_until_serving

pytestmark = [pytest.mark.fault, pytest.mark.timeout(900)]


async def test_nothing_is_lost_or_applied_twice_while_processes_are_killed(
    database_url: str, second_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("STUDYHALL_FAULT_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    store = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    # The seed fixes the fault schedule (which kills, at what progress); timing varies.
    print(f"\nbackbone fault test on {store}, seed {seed} (set STUDYHALL_FAULT_SEED to reuse)")
    started = time.monotonic()
    data_dir = tmp_path / "data"
    logs = tmp_path / "logs"
    logs.mkdir()
    signer = LocalSigner.ensure(data_dir)

    with provide_nats(tmp_path / "nats") as nats_server:
        if not nats_server.can_restart:
            pytest.skip("the fault test needs a nats-server the harness can kill and restart")
        env = service_environment(
            data_dir=data_dir,
            nats_url=nats_server.url,
            redis_url=redis_url,
            members_database_url=database_url,
            analytics_database_url=second_database_url,
        )
        api = ServiceProcess("members", "serve", env, logs)
        relay = ServiceProcess("members", "relay", env, logs)
        consumer = ServiceProcess("analytics", "consume", env, logs)
        processes = (api, relay, consumer)
        members_db = Database(database_url)
        analytics_db = Database(second_database_url)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{env['STUDYHALL_MEMBERS_GRPC_PORT']}")
        exit_codes: dict[str, int] = {}
        try:
            for process in processes:
                process.start()
            await wait_until_serving(channel, timeout=60)
            stub = members_grpc.MembersServiceStub(channel)
            ledger = Ledger(target=CHANGES)
            communities = await create_communities(stub, signer, ledger)
            load_started = time.monotonic()
            chaos = Chaos()
            watch = await ConsumerWatch.connect(
                nats_server.url, stream_name("members"), ANALYTICS_MEMBERS.name
            )
            try:
                await asyncio.gather(
                    drive(stub, signer, communities, ledger, rng),
                    kill_repeatedly(relay, RELAY_KILLS, ledger, rng, chaos),
                    kill_repeatedly(consumer, CONSUMER_KILLS, ledger, rng, chaos, watch),
                    kill_nats_repeatedly(nats_server, NATS_KILLS, ledger, rng, chaos),
                )
            finally:
                await watch.close()
            load_seconds = time.monotonic() - load_started
            catch_up_started = time.monotonic()
            await wait_until_caught_up(members_db, analytics_db, processes)
            catch_up_seconds = time.monotonic() - catch_up_started
            broker = await broker_figures(nats_server.url)
            tally = await tally_of(members_db, analytics_db, ledger, communities)
            for process in processes:
                exit_codes[process.name] = process.stop()
        finally:
            await channel.close()
            await members_db.close()
            await analytics_db.close()
            for process in processes:
                process.kill()

    # Redeliveries, counted by JetStream itself: the durable consumer's sequence grows by one
    # with every delivery, first or repeated, so its deliveries beyond one per stored message
    # of the subjects it reads are redeliveries: messages handed to a consumer process that
    # was killed before its ack, or whose ack was lost with nats-server. (The inbox cannot
    # show them: it keeps each event once by design.) A nats-server kill can roll the
    # consumer's state back, which only makes this figure smaller: it is a lower bound.
    redelivered = broker["consumer_deliveries"] - broker["consumer_messages"]
    tally.update(
        store=store,
        seed=seed,
        redelivered=redelivered,
        # Events the relay published again after the duplicate window had passed, so stored
        # twice in the stream; the inbox must have absorbed them.
        stream_duplicates=broker["stream_messages"] - tally["produced"],
        dead_letters=broker["dead_letters"],
        consumer_pending=broker["consumer_pending"],
        kills={"relay": relay.kills, "consumer": consumer.kills, "nats": chaos.nats_kills},
        consumer_kills_with_batch_in_flight=chaos.in_flight_hits,
        nats_downtime_seconds=round(chaos.nats_downtime, 1),
        crashes={p.name: p.unexpected_exits for p in processes if p.unexpected_exits},
        exit_codes_on_sigterm=exit_codes,
        unknown_outcomes=dict(ledger.unknown),
        warnings={p.name: dict(warning_counts(p).most_common(6)) for p in processes},
        seconds={
            "load": round(load_seconds, 1),
            "catch_up": round(catch_up_seconds, 1),
            "total": round(time.monotonic() - started, 1),
        },
    )
    samples = tally.pop("samples")
    print("backbone fault tally:", json.dumps(tally, indent=1))
    print("chaos:", "; ".join(chaos.log))
    if samples:
        print("samples:", json.dumps(samples, indent=1, default=str))

    assert ledger.rejected == [], ledger.rejected[:10]
    assert tally["acknowledged"] >= CHANGES + COMMUNITIES >= 20_000 + 100
    assert relay.kills >= 10, tally["kills"]
    assert consumer.kills >= 10, tally["kills"]
    assert chaos.nats_kills >= 2, tally["kills"]
    assert tally["crashes"] == {}, tally["crashes"]
    # Nothing lost, nothing consumed that was never produced.
    assert tally["lost"] == 0, samples["lost"]
    assert tally["unexpected"] == 0, samples["unexpected"]
    # Every change the API acknowledged was committed once, with exactly one event.
    assert tally["acknowledged_without_event"] == 0, samples
    assert tally["events_committed_twice"] == 0, samples
    assert tally["model_mismatches"] == 0, samples
    # Exactly-once effects: analytics holds every membership's last version and state...
    assert tally["effect_mismatches"] == 0, samples
    # ...so it counts the members of every community as members does.
    assert tally["count_mismatches"] == 0, samples
    assert tally["communities_without_stats"] == 0, samples
    assert tally["dead_letters"] == 0
    # Proof that the faults bit: events were delivered more than once.
    assert redelivered > 0, "no redeliveries: the kills did not hit work in flight"
    # After all that, each process still stops cleanly on SIGTERM (DESIGN.md rule 12).
    assert set(exit_codes.values()) == {0}, exit_codes
