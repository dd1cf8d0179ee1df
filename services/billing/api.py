"""gRPC edge of the billing service: decode, validate, authorize, call, encode."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing import domain
from services.billing.store.repository import ProductRepository
from services.billing.store.tables import idempotency_keys
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import NotFound
from services.kit.idempotency import IdempotentWriter
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.billing.v1 import billing_service_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BillingService"].full_name


class BillingApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access
        self.writer = IdempotentWriter(database, idempotency_keys)

    async def CreateProduct(
        self, request: pb.CreateProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateProductResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("kind", request.kind, domain.ProductKind, "ProductKind", required=True)
        problems.text("name", request.name, max_length=domain.NAME_MAX)
        problems.text(
            "description", request.description, required=False, max_length=domain.DESCRIPTION_MAX
        )
        _check_price(problems, request)
        periods = {0, *domain.BillingPeriod}
        problems.enum("billing_period", request.billing_period, periods, "BillingPeriod")
        if not 0 <= request.trial_days <= domain.TRIAL_DAYS_MAX:
            problems.add("trial_days", f"must be between 0 and {domain.TRIAL_DAYS_MAX}")
        elif (
            request.trial_days > 0
            and request.billing_period in periods
            and not domain.allows_trial(domain.period_or_default(request.billing_period))
        ):
            problems.add("trial_days", "is only allowed for monthly or yearly products")
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "selling a product"
        )
        await self.access.require_writable(request.community_id, caller, "selling a product")

        async def create(session: AsyncSession) -> pb.CreateProductResponse:
            product = domain.new_product(
                community_id=request.community_id,
                kind=domain.ProductKind(request.kind),
                name=request.name,
                price=domain.Money(request.price.currency, request.price.amount_minor),
                description=request.description,
                billing_period=domain.period_or_default(request.billing_period),
                trial_days=request.trial_days,
            )
            await ProductRepository(session).add(product)
            return pb.CreateProductResponse(product=_to_proto(product))

        return await self.writer.write(caller.user_id, request, pb.CreateProductResponse, create)

    async def GetProduct(
        self, request: pb.GetProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetProductResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("product_id", request.product_id)
        problems.raise_if_any()
        await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            product = await ProductRepository(session).get(request.community_id, request.product_id)
        if product is None:
            # Looked up within the community: another community's product is simply not found.
            raise NotFound(
                f"product {request.product_id} not found in community {request.community_id}"
            )
        return pb.GetProductResponse(product=_to_proto(product))


def _check_price(problems: Violations, request: pb.CreateProductRequest) -> None:
    if not request.HasField("price"):
        problems.add("price", "is required")
        return
    currency = request.price.currency
    if not domain.CURRENCY_PATTERN.fullmatch(currency):
        problems.add("price.currency", "must be three upper-case letters, e.g. USD")
    elif currency not in domain.CURRENCIES:
        problems.add("price.currency", f"{currency!r} is not a supported ISO 4217 currency code")
    if request.price.amount_minor < 0:
        problems.add("price.amount_minor", "must be zero or more")


def _to_proto(product: domain.Product) -> pb.Product:
    return pb.Product(
        id=product.id,
        community_id=product.community_id,
        kind=pb.ProductKind.ValueType(product.kind),
        name=product.name,
        description=product.description,
        price=pb.Money(currency=product.price.currency, amount_minor=product.price.amount_minor),
        billing_period=pb.BillingPeriod.ValueType(product.billing_period),
        trial_days=product.trial_days,
        create_time=timestamp(product.created_at),
        version=product.version,
    )
