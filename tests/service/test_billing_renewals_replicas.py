"""Renewals run once with two replicas: two billing processes on one database (each runs the
kit's scheduler) renew subscriptions whose month lasts a second; every period is charged
once, back to back, and the ledger holds."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select

from services.billing.store import tables
from services.kit.access import Role
from services.kit.auth import LocalSigner
from services.kit.database import Database, utc
from services.kit.projection import upsert_newer
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc
from tests.support.billing import API_KEY, SECRET, sandbox
from tests.support.processes import service_process
from tests.support.services import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

MONTH = 1.0
SUBSCRIBERS = 2


async def test_two_replicas_renew_each_period_once(
    database_url: str, redis_url: str, nats_url: str, tmp_path: Path
) -> None:
    signer = LocalSigner.ensure(tmp_path)
    webhook_port = free_port()
    settings = {
        "provider_url": "",
        "provider_api_key": API_KEY,
        "webhook_secret": SECRET,
        "subscription_month_seconds": str(MONTH),
        "relay": "external",
    }
    url = f"http://127.0.0.1:{webhook_port}/webhooks/provider"
    (tmp_path / "sandbox-data").mkdir()
    with sandbox(tmp_path / "sandbox-data", url) as provider:
        settings["provider_url"] = provider.url
        with (
            service_process(
                "billing", tmp_path, database_url, redis_url, nats_url,
                webhook_port=str(webhook_port), **settings,
            ) as (_, port),
            service_process(
                "billing", tmp_path, database_url, redis_url, nats_url,
                webhook_port=str(free_port()), **settings,
            ),
        ):  # fmt: skip
            database = Database(database_url)
            try:
                await _check(database, signer, port)
            finally:
                await database.close()


async def _check(database: Database, signer: LocalSigner, port: int) -> None:
    community_id = str(uuid.uuid4())
    users = [f"subscriber-{i}" for i in range(SUBSCRIBERS)]
    async with database.write() as session:
        await upsert_newer(
            session,
            tables.access.communities,
            [{"community_id": community_id, "visibility": 1, "version": 1}],
            ["community_id"],
        )
        await upsert_newer(
            session,
            tables.access.roles,
            [
                {
                    "community_id": community_id,
                    "user_id": user,
                    "role": int(Role.OWNER if user == "owner" else Role.MEMBER),
                    "active": True,
                    "version": 1,
                }
                for user in ["owner", *users]
            ],
            ["community_id", "user_id"],
        )

    def auth(user: str) -> list[tuple[str, str]]:
        return [("authorization", "Bearer " + signer.mint(user))]

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.BillingServiceStub(channel)
        made = await stub.CreateProduct(
            pb.CreateProductRequest(
                community_id=community_id,
                kind=pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
                name="Monthly",
                price=pb.Money(currency="EUR", amount_minor=700),
                billing_period=pb.BILLING_PERIOD_MONTHLY,
            ),
            metadata=auth("owner"),
        )
        subs = [
            (
                await stub.CreateSubscription(
                    pb.CreateSubscriptionRequest(
                        community_id=community_id,
                        product_id=made.product.id,
                        payment_method="pm_card_visa",
                    ),
                    metadata=auth(user),
                )
            ).subscription.id
            for user in users
        ]

        async def renewed_twice() -> bool:
            async with database.read() as session:
                paid = await session.scalar(
                    select(func.count())
                    .select_from(tables.subscription_charges)
                    .join(
                        tables.charges,
                        tables.charges.c.id == tables.subscription_charges.c.charge_id,
                    )
                    .where(
                        tables.charges.c.state == 3,
                        tables.subscription_charges.c.purpose == "renewal",
                    )
                )
            return int(paid or 0) >= 2 * SUBSCRIBERS

        await eventually(renewed_twice, "two renewals of each subscription", 30)
        for user, sub_id in zip(users, subs, strict=True):
            await stub.CancelSubscription(
                pb.CancelSubscriptionRequest(community_id=community_id, subscription_id=sub_id),
                metadata=auth(user),
            )

        async def all_ended() -> bool:
            async with database.read() as session:
                running = await session.scalar(
                    select(func.count())
                    .select_from(tables.subscriptions)
                    .where(tables.subscriptions.c.state != 5)
                )
                pending = await session.scalar(
                    select(func.count())
                    .select_from(tables.charges)
                    .where(tables.charges.c.state.in_([1, 2]))
                )
            return not running and not pending

        await eventually(all_ended, "every subscription ended", 30)
        verified = await stub.VerifyLedger(
            pb.VerifyLedgerRequest(community_id=community_id), metadata=auth("owner")
        )
        assert list(verified.problems) == []

    async with database.read() as session:
        charges = list(
            await session.execute(
                select(tables.subscription_charges.c.subscription_id, tables.charges.c.state).join(
                    tables.charges, tables.charges.c.id == tables.subscription_charges.c.charge_id
                )
            )
        )
        entitlements = {row.id: row for row in await session.execute(select(tables.entitlements))}
        ended = list(await session.execute(select(tables.subscriptions)))
    for sub in ended:
        paid = sum(1 for sub_id, state in charges if sub_id == sub.id and state == 3)
        tried = sum(1 for sub_id, _ in charges if sub_id == sub.id)
        assert tried == paid  # a visa card: no attempt failed, none was made twice
        access = entitlements[sub.entitlement_id]
        span = (utc(access.end_at) - utc(access.start_at)).total_seconds()
        # Access spans exactly the periods paid for, one charge each.
        assert abs(span - paid * MONTH) < 0.01, (span, paid)
