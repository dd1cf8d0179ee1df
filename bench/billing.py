"""CreateCheckout under load, up to the payment provider call, next to the echo + token
baseline and JoinCommunity, measured in the same run.

    make bench-billing                              # SQLite, the embedded default
    make bench-billing BENCH_ARGS="--seconds 10 --rounds 1"
    make bench-billing BENCH_ARGS="--store postgresql"

Each round offers three loads from the same client, `--concurrency` calls in flight, every
call signed by a user of its own:

- echo + token and JoinCommunity exactly as bench.content runs them;
- CreateCheckout: `--replicas` billing API processes (`python -m bench.billing_server`: the
  billing service on a provider adapter that answers at once, so the time measured ends where
  the provider call begins; no webhook follows) and the outbox relay in a process of its own,
  members of the community each buying one course with an idempotency key of their own.
  Each call: the access check, the idempotent write of the charge and its invoice (with the
  community's next invoice number), the (instant) provider call, and the write that keeps
  the provider's payment id.

Billing learns roles from members' events; here its projection is seeded in bulk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.content import median
from bench.members import free_port, offer_joins, process, start_echo, start_members, wait_for_port
from bench.members import seed as seed_members
from bench.support import BROKER, Method, Result, drain, machine_facts, offer_calls, wait_serving
from services.billing.store import tables as billing_tables
from services.kit.auth import LocalSigner
from services.kit.database import Database
from services.kit.migrations import migrate
from services.members.store.tables import outbox as members_outbox
from studyhall.billing.v1 import billing_service_pb2 as pb
from tests.harness.servers import find_nats_server, provide_nats, provide_postgres, provide_redis

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "billing" / "store" / "migrations"
CREATE_CHECKOUT = Method(
    "/studyhall.billing.v1.BillingService/CreateCheckout",
    pb.CreateCheckoutRequest,
    pb.CreateCheckoutResponse,
)
BATCH = 5000


async def seed_billing(url: str, community_id: str, community_count: int, buyers: list[str]) -> str:
    """Billing's projection (the community among `community_count`, its owner and `buyers`
    as members) and one course on sale; returns the course's id."""
    access = billing_tables.access
    database = Database(url)
    await migrate(database, MIGRATIONS, service="billing")
    now = datetime.now(UTC)
    communities = [
        {
            "community_id": community_id if index == 0 else str(uuid.uuid4()),
            "visibility": 1,
            "version": 1,
            "archived": False,
        }
        for index in range(community_count)
    ]
    roles: list[dict[str, Any]] = [
        {
            "community_id": community_id,
            "user_id": user_id,
            "role": 4 if number == 0 else 1,
            "active": True,
            "version": 1,
            "muted_until": None,
            "level": 1,
            "level_order": 0,
        }
        for number, user_id in enumerate(["owner-0", *buyers])
    ]
    course = str(uuid.uuid4())
    product = {
        "id": course,
        "community_id": community_id,
        "kind": pb.PRODUCT_KIND_PAID_COURSE,
        "name": "Statistics from scratch",
        "description": "",
        "price_currency": "EUR",
        "price_amount_minor": 4900,
        "billing_period": pb.BILLING_PERIOD_ONE_OFF,
        "trial_days": 0,
        "created_at": now,
        "version": 1,
        "disclosure": "",
        "price_id": course,
        "archived_at": None,
    }
    price = {
        "id": course,
        "community_id": community_id,
        "product_id": course,
        "currency": "EUR",
        "amount_minor": 4900,
        "billing_period": pb.BILLING_PERIOD_ONE_OFF,
        "created_at": now,
    }
    async with database.write() as session:
        for table, rows in (
            (access.communities, communities),
            (access.roles, roles),
            (billing_tables.products, [product]),
            (billing_tables.prices, [price]),
        ):
            for start in range(0, len(rows), BATCH):
                await session.execute(table.insert(), rows[start : start + BATCH])
    await database.close()
    return course


def start_billing(
    stack: contextlib.ExitStack,
    env: dict[str, str],
    workdir: Path,
    round_number: int,
    replicas: int,
) -> tuple[dict[str, int], list[int]]:
    pids: dict[str, int] = {}
    api_ports: list[int] = []
    for mode, name in [("relay", "relay")] + [("serve", f"api {n}") for n in range(replicas)]:
        port = free_port()
        command = (
            [sys.executable, "-m", "services.billing", "relay"]
            if mode == "relay"
            else [sys.executable, "-m", "bench.billing_server", "serve"]
        )
        child = stack.enter_context(
            process(
                command,
                {
                    **env,
                    "STUDYHALL_RELAY": "external",
                    "STUDYHALL_CONSUMERS": "external",
                    "STUDYHALL_BILLING_GRPC_PORT": str(port),
                    "STUDYHALL_BILLING_METRICS_PORT": str(free_port()),
                    "STUDYHALL_BILLING_WEBHOOK_PORT": "0",
                },
                workdir / f"billing-{round_number}-{name.replace(' ', '-')}.log",
            )
        )
        wait_for_port(port, child)
        asyncio.run(wait_serving(port, "billing"))
        pids[name] = child.pid
        if mode == "serve":
            api_ports.append(port)
    return pids, api_ports


async def offer_checkouts(
    ports: list[int],
    server_pids: dict[str, int],
    community_id: str,
    course: str,
    tokens: list[str],
    options: argparse.Namespace,
) -> Result:
    def request() -> pb.CreateCheckoutRequest:
        return pb.CreateCheckoutRequest(
            request_id=uuid.uuid4().hex,
            community_id=community_id,
            product_ids=[course],
            payment_method="pm_card_visa",
        )

    return await offer_calls(
        ports,
        server_pids,
        CREATE_CHECKOUT,
        request,
        tokens,
        options.seconds,
        options.concurrency,
        exhausted="ran out of pre-signed buyers: raise --buyers",
    )


def run(options: argparse.Namespace, workdir: Path) -> None:
    data_dir = workdir / "data"
    signer = LocalSigner.ensure(data_dir)
    facts = machine_facts(find_nats_server()[0])
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    with contextlib.ExitStack() as stack:
        nats_server = stack.enter_context(provide_nats(workdir / "nats"))
        redis_server = stack.enter_context(provide_redis(workdir / "redis"))
        if options.store == "postgresql":
            postgres = stack.enter_context(provide_postgres(workdir / "postgres"))
            suffix = uuid.uuid4().hex[:8]
            members_url = postgres.create_database(f"bench_members_{suffix}")
            billing_url = postgres.create_database(f"bench_billing_{suffix}")
        else:
            members_url = f"sqlite+aiosqlite:///{data_dir}/members.db"
            billing_url = f"sqlite+aiosqlite:///{data_dir}/billing.db"
        seeding = time.perf_counter()
        community = asyncio.run(seed_members(members_url, options.communities, options.members))
        buyers = [f"buyer-{uuid.uuid4().hex[:12]}" for _ in range(options.buyers)]
        course = asyncio.run(seed_billing(billing_url, community, options.communities, buyers))
        print(
            f"seeded {options.communities:,} communities, {options.members:,} members of one "
            f"and, in billing, {len(buyers):,} buying members in "
            f"{time.perf_counter() - seeding:.0f} s ({options.store})"
        )
        joiners = [
            signer.mint(f"joiner-{uuid.uuid4().hex[:12]}", ttl_seconds=3600)
            for _ in range(options.users)
        ]
        buyer_tokens = [signer.mint(buyer, ttl_seconds=3600) for buyer in buyers]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STUDYHALL_")},
            "STUDYHALL_DATA_DIR": str(data_dir),
            "STUDYHALL_NATS_URL": nats_server.url,
            "STUDYHALL_REDIS_URL": redis_server.url,
            "STUDYHALL_MEMBERS_DATABASE_URL": members_url,
            "STUDYHALL_BILLING_DATABASE_URL": billing_url,
            "STUDYHALL_LOG_LEVEL": "WARNING",
            "STUDYHALL_RATE_LIMIT_PER_CALLER": "100000/second",
            "STUDYHALL_RATE_LIMIT_PER_COMMUNITY": "100000/second",
        }
        signed: list[Result] = []
        joins: list[Result] = []
        checkouts: list[Result] = []
        joiners_used = buyers_used = 0

        def with_broker(pids: dict[str, int]) -> dict[str, int]:
            if nats_server.pid is not None:
                pids[BROKER] = nats_server.pid
            return pids

        for round_number in range(options.rounds):
            with contextlib.ExitStack() as servers:
                pids, ports = start_echo(
                    servers, env, workdir, round_number, options.replicas, verify=True
                )
                signed.append(
                    asyncio.run(
                        offer_joins(
                            ports,
                            pids,
                            community,
                            joiners,
                            options.seconds,
                            options.concurrency,
                            reuse_tokens=True,
                        )
                    )
                )
            with contextlib.ExitStack() as servers:
                pids, ports = start_members(servers, env, workdir, round_number, options.replicas)
                result = asyncio.run(
                    offer_joins(
                        ports,
                        with_broker(pids),
                        community,
                        joiners[joiners_used:],
                        options.seconds,
                        options.concurrency,
                    )
                )
                joiners_used += result.latency.count + result.errors + 100
                result.backlog, result.drain_seconds = drain(members_url, members_outbox)
                joins.append(result)
            with contextlib.ExitStack() as servers:
                pids, ports = start_billing(servers, env, workdir, round_number, options.replicas)
                result = asyncio.run(
                    offer_checkouts(
                        ports,
                        with_broker(pids),
                        community,
                        course,
                        buyer_tokens[buyers_used:],
                        options,
                    )
                )
                buyers_used += result.latency.count + result.errors + 100
                checkouts.append(result)
    report(options, signed, joins, checkouts)


def report(
    options: argparse.Namespace,
    signed: list[Result],
    joins: list[Result],
    checkouts: list[Result],
) -> None:
    print(
        f"\nCreateCheckout of one course (to the provider call) and JoinCommunity into one of "
        f"{options.members:,} members among {options.communities:,} communities; "
        f"{options.concurrency} concurrent callers, {options.seconds:.0f} s x {options.rounds} "
        f"rounds, store {options.store}, {options.replicas} API replica(s) of each service "
        "and as many echo servers"
    )
    for name, results in (
        ("echo + token", signed),
        ("JoinCommunity", joins),
        ("CreateCheckout", checkouts),
    ):
        rates = ", ".join(f"{r.rate:.0f}" for r in results)
        print(
            f"{name:<14} {median([r.rate for r in results]):7.0f} calls/s (rounds: {rates})  "
            f"p50 {median([r.latency.p50 * 1000 for r in results]):6.1f} ms  "
            f"p99 {median([r.latency.p99 * 1000 for r in results]):6.1f} ms  "
            f"server CPU {median([r.server_cpu_ms for r in results]):5.2f} ms/call  "
            f"errors {sum(r.errors for r in results)}"
        )
    checkout_ratios, join_ratios = (
        [r.rate / s.rate for r, s in zip(results, signed, strict=True)]
        for results in (checkouts, joins)
    )
    for name, ratios in (("CreateCheckout", checkout_ratios), ("JoinCommunity", join_ratios)):
        print(
            f"ratio {name}/echo+token: median {median(ratios):.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    met = sum(c >= j for c, j in zip(checkout_ratios, join_ratios, strict=True))
    print(
        f"target CreateCheckout/echo+token >= JoinCommunity/echo+token: met in {met} of "
        f"{len(checkout_ratios)} rounds"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--communities", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--users", type=int, default=40_000, help="pre-signed joiners")
    parser.add_argument("--buyers", type=int, default=40_000, help="pre-signed buyers")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-billing-") as scratch:
        run(options, Path(scratch))


if __name__ == "__main__":
    main()
