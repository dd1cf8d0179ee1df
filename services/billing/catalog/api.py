"""gRPC handlers for a community's catalogue: products at exact prices, one-off or recurring."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.catalog import domain
from services.billing.catalog.currencies import CURRENCIES
from services.billing.catalog.store import ProductRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import NotFound
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp, timestamp_or_none
from services.kit.validation import Violations
from studyhall.billing.v1 import billing_service_pb2 as pb


class CatalogApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

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
        check_disclosure(problems, "disclosure", request.kind, request.disclosure)
        check_money(problems, "price", request.price if request.HasField("price") else None)
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
            request.community_id, caller, Role.ADMIN, "selling a product", writable=True
        )

        async def create(session: AsyncSession) -> pb.CreateProductResponse:
            product = domain.new_product(
                community_id=request.community_id,
                kind=domain.ProductKind(request.kind),
                name=request.name,
                price=domain.Money(request.price.currency, request.price.amount_minor),
                description=request.description,
                billing_period=domain.period_or_default(request.billing_period),
                trial_days=request.trial_days,
                disclosure=request.disclosure,
            )
            await ProductRepository(session).save(product, new_price=True)
            return pb.CreateProductResponse(product=product_to_proto(product))

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
            raise product_not_found(request.product_id, request.community_id)
        return pb.GetProductResponse(product=product_to_proto(product))

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProductsResponse:
        caller = current_identity()
        problems = Violations()
        query = ["products", request.community_id, str(request.include_archived)]
        page = read_page(problems, request, query)
        problems.raise_if_any()
        if request.include_archived:
            await self.access.require_role(
                request.community_id, caller, Role.ADMIN, "listing archived products"
            )
        else:
            await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            found = await ProductRepository(session).oldest_first(
                request.community_id, page.after, page.size + 1, archived=request.include_archived
            )
        items, token = page_of(found, page, lambda product: (product.created_at, product.id))
        return pb.ListProductsResponse(
            products=[product_to_proto(product) for product in items], next_page_token=token
        )

    async def UpdateProduct(
        self, request: pb.UpdateProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateProductResponse:
        caller = current_identity()
        paths = sorted(set(request.update_mask.paths))
        problems = Violations()
        if not paths:
            problems.add("update_mask", "name at least one field to change")
        for path in paths:
            if path not in domain.UPDATABLE:
                problems.add("update_mask", f"{path!r} cannot be changed; use {domain.UPDATABLE}")
        given = request.product
        if "name" in paths:
            problems.text("product.name", given.name, max_length=domain.NAME_MAX)
        if "description" in paths:
            problems.text(
                "product.description",
                given.description,
                required=False,
                max_length=domain.DESCRIPTION_MAX,
            )
        if "disclosure" in paths and len(given.disclosure) > domain.DISCLOSURE_MAX:
            problems.add(
                "product.disclosure", f"must be at most {domain.DISCLOSURE_MAX} characters"
            )
        if "price" in paths:
            check_money(problems, "product.price", given.price if given.HasField("price") else None)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "changing a product", writable=True
        )
        changes: dict[str, Any] = {path: getattr(given, path) for path in paths if path != "price"}
        if "price" in paths:
            changes["price"] = domain.Money(given.price.currency, given.price.amount_minor)

        async def change(session: AsyncSession) -> pb.UpdateProductResponse:
            products = ProductRepository(session)
            product = await products.get(request.community_id, request.product_id)
            if product is None:
                raise product_not_found(request.product_id, request.community_id)
            changed = domain.update(product, changes, request.etag)
            problems = Violations()
            check_disclosure(problems, "product.disclosure", changed.kind, changed.disclosure)
            problems.raise_if_any()
            await products.save(changed, new_price=changed.price_id != product.price_id)
            return pb.UpdateProductResponse(product=product_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.UpdateProductResponse, change)

    async def ArchiveProduct(
        self, request: pb.ArchiveProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.ArchiveProductResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "archiving a product", writable=True
        )

        async def archive(session: AsyncSession) -> pb.ArchiveProductResponse:
            products = ProductRepository(session)
            product = await products.get(request.community_id, request.product_id)
            if product is None:
                raise product_not_found(request.product_id, request.community_id)
            archived = domain.archive(product, request.etag, datetime.now(UTC))
            if archived is not product:
                await products.save(archived, new_price=False)
            return pb.ArchiveProductResponse(product=product_to_proto(archived))

        return await self.writer.write(caller.user_id, request, pb.ArchiveProductResponse, archive)


def check_money(problems: Violations, name: str, money: pb.Money | None) -> None:
    """An amount in a known currency's minor unit, zero or more."""
    if money is None:
        problems.add(name, "is required")
        return
    currency = money.currency
    if not domain.CURRENCY_PATTERN.fullmatch(currency):
        problems.add(f"{name}.currency", "must be three upper-case letters, e.g. USD")
    elif currency not in CURRENCIES:
        problems.add(f"{name}.currency", f"{currency!r} is not a supported ISO 4217 currency code")
    if money.amount_minor < 0:
        problems.add(f"{name}.amount_minor", "must be zero or more")


def check_disclosure(problems: Violations, name: str, kind: int, disclosure: str) -> None:
    if len(disclosure) > domain.DISCLOSURE_MAX:
        problems.add(name, f"must be at most {domain.DISCLOSURE_MAX} characters")
    elif domain.needs_disclosure(kind) and not disclosure.strip():
        problems.add(name, "is required for a sponsorship: members are told who sponsors")


def product_not_found(product_id: str, community_id: str) -> NotFound:
    # Looked up within the community: another community's product is simply not found.
    return NotFound(f"product {product_id} not found in community {community_id}")


def product_to_proto(product: domain.Product) -> pb.Product:
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
        disclosure=product.disclosure,
        etag=product.etag,
        price_id=product.price_id,
        archive_time=timestamp_or_none(product.archived_at),
    )
