"""Communities put products in their catalogue at exact prices, one-off or by subscription."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select

from services.billing.app import SPEC
from services.billing.settings import BillingSettings
from services.billing.store.tables import idempotency_keys, products
from services.kit.access import Role
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.errors import field_violations
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service


@pytest.fixture
async def billing(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        SPEC,
        BillingSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
        webhook_port=0,
    ) as running:
        yield running


@pytest.fixture
def stub(billing: RunningService) -> pb_grpc.BillingServiceStub:
    return pb_grpc.BillingServiceStub(billing.channel)


def community() -> str:
    return str(uuid.uuid4())


async def community_run_by(running: RunningService, user_id: str, role: Role = Role.ADMIN) -> str:
    """A new public community in which `user_id` is an admin (or `role`), so may sell."""
    community_id = community()
    await grant(running, community_id, user_id, role)
    return community_id


def plan(
    community_id: str,
    *,
    request_id: str = "",
    name: str = "Supporter",
    price: pb.Money | None = None,
    billing_period: pb.BillingPeriod.ValueType = pb.BILLING_PERIOD_MONTHLY,
    trial_days: int = 0,
) -> pb.CreateProductRequest:
    return pb.CreateProductRequest(
        request_id=request_id,
        community_id=community_id,
        kind=pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
        name=name,
        price=price or pb.Money(currency="EUR", amount_minor=499),
        billing_period=billing_period,
        trial_days=trial_days,
    )


async def rows(running: RunningService) -> tuple[int, int]:
    """How many products and idempotency keys the service's database holds."""
    async with running.deps.database.read() as session:
        product_count = await session.scalar(select(func.count()).select_from(products))
        key_count = await session.scalar(select(func.count()).select_from(idempotency_keys))
    return int(product_count or 0), int(key_count or 0)


async def test_owner_offers_monthly_plan_with_trial_and_reads_it_back(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    community_id = await community_run_by(billing, "ada", Role.OWNER)
    created = await stub.CreateProduct(
        pb.CreateProductRequest(
            community_id=community_id,
            kind=pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
            name="  Supporter  ",
            description="Weekly office hours and the full archive.",
            price=pb.Money(currency="USD", amount_minor=999),
            billing_period=pb.BILLING_PERIOD_MONTHLY,
            trial_days=14,
        ),
        metadata=billing.auth("ada"),
    )
    product = created.product
    assert uuid.UUID(product.id).version == 4
    assert product.community_id == community_id
    assert product.kind == pb.PRODUCT_KIND_MEMBERSHIP_PLAN
    assert product.name == "Supporter"
    assert product.description == "Weekly office hours and the full archive."
    assert product.price == pb.Money(currency="USD", amount_minor=999)
    assert product.billing_period == pb.BILLING_PERIOD_MONTHLY
    assert product.trial_days == 14
    assert product.version == 1
    assert product.HasField("create_time")

    fetched = await stub.GetProduct(
        pb.GetProductRequest(community_id=community_id, product_id=product.id),
        metadata=billing.auth("grace"),
    )
    assert fetched.product == product


async def test_price_is_kept_in_minor_units(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    community_id = await community_run_by(billing, "ada")
    # 2**53 + 1 has no exact double: it survives only if no float is ever involved.
    exact = 2**53 + 1
    created = await stub.CreateProduct(
        pb.CreateProductRequest(
            community_id=community_id,
            kind=pb.PRODUCT_KIND_SPONSORSHIP,
            name="Founding sponsor",
            disclosure="Sponsored by Acme Books.",
            price=pb.Money(currency="JPY", amount_minor=exact),
        ),
        metadata=billing.auth("ada"),
    )
    fetched = await stub.GetProduct(
        pb.GetProductRequest(community_id=community_id, product_id=created.product.id),
        metadata=billing.auth("ada"),
    )
    assert fetched.product.price == pb.Money(currency="JPY", amount_minor=exact)

    async with billing.deps.database.read() as session:
        stored = (
            await session.execute(
                select(products.c.price_currency, products.c.price_amount_minor).where(
                    products.c.id == created.product.id
                )
            )
        ).one()
    assert stored.price_currency == "JPY"
    assert type(stored.price_amount_minor) is int
    assert stored.price_amount_minor == exact


async def test_free_product_costs_zero(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    created = await stub.CreateProduct(
        plan(
            await community_run_by(billing, "ada"), price=pb.Money(currency="GBP", amount_minor=0)
        ),
        metadata=billing.auth("ada"),
    )
    assert created.product.price.amount_minor == 0


async def test_billing_period_defaults_to_one_off(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    created = await stub.CreateProduct(
        pb.CreateProductRequest(
            community_id=await community_run_by(billing, "ada"),
            kind=pb.PRODUCT_KIND_PAID_COURSE,
            name="Statistics from scratch",
            price=pb.Money(currency="EUR", amount_minor=4900),
        ),
        metadata=billing.auth("ada"),
    )
    assert created.product.billing_period == pb.BILLING_PERIOD_ONE_OFF
    assert created.product.trial_days == 0


@pytest.mark.parametrize(
    "billing_period", [pb.BILLING_PERIOD_ONE_OFF, pb.BILLING_PERIOD_UNSPECIFIED]
)
async def test_trial_on_one_off_product_is_refused(
    billing: RunningService,
    stub: pb_grpc.BillingServiceStub,
    billing_period: pb.BillingPeriod.ValueType,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateProduct(
            plan(community(), billing_period=billing_period, trial_days=7),
            metadata=billing.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"trial_days"}
    assert await rows(billing) == (0, 0)


async def test_yearly_plan_may_offer_a_year_long_trial(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    created = await stub.CreateProduct(
        plan(
            await community_run_by(billing, "ada"),
            billing_period=pb.BILLING_PERIOD_YEARLY,
            trial_days=365,
        ),
        metadata=billing.auth("ada"),
    )
    assert created.product.trial_days == 365


@pytest.mark.parametrize("trial_days", [366, -1])
async def test_trial_longer_than_a_year_or_negative_is_refused(
    billing: RunningService, stub: pb_grpc.BillingServiceStub, trial_days: int
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateProduct(
            plan(community(), billing_period=pb.BILLING_PERIOD_YEARLY, trial_days=trial_days),
            metadata=billing.auth("ada"),
        )
    assert field_violations(caught.value) == {"trial_days": "must be between 0 and 365"}


@pytest.mark.parametrize("currency", ["", "usd", "US", "USDT", "XYZ", "€"])
async def test_currency_must_be_a_known_iso_code(
    billing: RunningService, stub: pb_grpc.BillingServiceStub, currency: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateProduct(
            plan(community(), price=pb.Money(currency=currency, amount_minor=100)),
            metadata=billing.auth("ada"),
        )
    assert set(field_violations(caught.value)) == {"price.currency"}
    assert await rows(billing) == (0, 0)


async def test_negative_price_is_refused(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateProduct(
            plan(community(), price=pb.Money(currency="USD", amount_minor=-1)),
            metadata=billing.auth("ada"),
        )
    assert set(field_violations(caught.value)) == {"price.amount_minor"}


async def test_missing_fields_are_named_and_nothing_is_written(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    # The edge names what breaks the contract first; the handler then names the rest at once.
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.CreateProduct(
            pb.CreateProductRequest(community_id="c1", description="d" * 5_001),
            metadata=billing.auth("ada"),
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(malformed.value)) == {"community_id"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateProduct(
            pb.CreateProductRequest(community_id=community(), description="d" * 5_001),
            metadata=billing.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert set(violations) == {"kind", "name", "description", "price"}
    assert violations["price"] == "is required"
    assert await rows(billing) == (0, 0)


async def test_unknown_kind_and_billing_period_are_invalid(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    request = plan(community(), trial_days=30)
    request.kind = pb.ProductKind.ValueType(9)
    request.billing_period = pb.BillingPeriod.ValueType(9)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateProduct(request, metadata=billing.auth("ada"))
    assert set(field_violations(caught.value)) == {"kind", "billing_period"}


async def test_product_of_another_community_is_not_found(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    home = await community_run_by(billing, "ada")
    elsewhere = await community_run_by(billing, "ada")
    created = await stub.CreateProduct(plan(home), metadata=billing.auth("ada"))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetProduct(
            pb.GetProductRequest(community_id=elsewhere, product_id=created.product.id),
            metadata=billing.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"product {created.product.id} not found" in (caught.value.details() or "")


async def test_retry_with_same_request_id_creates_one_product(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    request = plan(await community_run_by(billing, "ada"), request_id="catalogue-1")
    first = await stub.CreateProduct(request, metadata=billing.auth("ada"))
    second = await stub.CreateProduct(request, metadata=billing.auth("ada"))

    assert second.product == first.product
    assert await rows(billing) == (1, 1)


async def test_same_request_id_with_different_payload_is_refused(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    community_id = await community_run_by(billing, "ada")
    await stub.CreateProduct(
        plan(community_id, request_id="catalogue-1"), metadata=billing.auth("ada")
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateProduct(
            plan(
                community_id,
                request_id="catalogue-1",
                price=pb.Money(currency="EUR", amount_minor=599),
            ),
            metadata=billing.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await rows(billing) == (1, 1)


async def test_call_without_token_is_unauthenticated(
    billing: RunningService, stub: pb_grpc.BillingServiceStub
) -> None:
    community_id = community()
    with pytest.raises(grpc.aio.AioRpcError) as created:
        await stub.CreateProduct(plan(community_id))
    assert created.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as fetched:
        await stub.GetProduct(
            pb.GetProductRequest(community_id=community_id, product_id=str(uuid.uuid4()))
        )
    assert fetched.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await rows(billing) == (0, 0)
