"""Products and their prices in the billing database."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.catalog.domain import BillingPeriod, Money, Product, ProductKind
from services.billing.store.tables import prices, products
from services.kit.database import utc
from services.kit.paging import Position
from services.kit.versioned import save_versioned

# Built once: a group of checkouts reads every product it names with this one statement.
_NAMED = select(products).where(products.c.id.in_(bindparam("ids", expanding=True)))


class ProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, product: Product, *, new_price: bool) -> None:
        """Insert or replace the product (one version older); a new price is a new row."""
        await save_versioned(self.session, products, [_values(product)], ["id"])
        if new_price:
            await self.session.execute(
                prices.insert().values(
                    id=product.price_id,
                    community_id=product.community_id,
                    product_id=product.id,
                    currency=product.price.currency,
                    amount_minor=product.price.amount_minor,
                    billing_period=int(product.billing_period),
                    created_at=product.created_at if product.version == 1 else datetime.now(UTC),
                )
            )

    async def get(self, community_id: str, product_id: str) -> Product | None:
        row = (
            await self.session.execute(
                select(products).where(
                    products.c.community_id == community_id, products.c.id == product_id
                )
            )
        ).first()
        return _product(row) if row else None

    async def many(self, community_id: str, product_ids: Sequence[str]) -> dict[str, Product]:
        rows = await self.session.execute(
            select(products).where(
                products.c.community_id == community_id, products.c.id.in_(list(product_ids))
            )
        )
        return {row.id: _product(row) for row in rows}

    async def named(self, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], Product]:
        """The products of `pairs` (community id, product id) that exist, in one statement;
        an id of another community's product is not found in this one."""
        if not pairs:
            return {}
        rows = await self.session.execute(_NAMED, {"ids": list({pid for _, pid in pairs})})
        found = {(row.community_id, row.id): row for row in rows}
        return {pair: _product(found[pair]) for pair in pairs if pair in found}

    async def oldest_first(
        self, community_id: str, after: Position | None, limit: int, *, archived: bool
    ) -> list[Product]:
        query = select(products).where(products.c.community_id == community_id)
        if not archived:
            query = query.where(products.c.archived_at.is_(None))
        if after is not None:
            created, product_id = after
            query = query.where(
                or_(
                    products.c.created_at > created,
                    and_(products.c.created_at == created, products.c.id > product_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(products.c.created_at, products.c.id).limit(limit)
        )
        return [_product(row) for row in rows]


def _values(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "community_id": product.community_id,
        "kind": int(product.kind),
        "name": product.name,
        "description": product.description,
        "price_currency": product.price.currency,
        "price_amount_minor": product.price.amount_minor,
        "billing_period": int(product.billing_period),
        "trial_days": product.trial_days,
        "created_at": product.created_at,
        "version": product.version,
        "disclosure": product.disclosure,
        "price_id": product.price_id,
        "archived_at": product.archived_at,
    }


def _product(row: Row[Any]) -> Product:
    return Product(
        id=row.id,
        community_id=row.community_id,
        kind=ProductKind(row.kind),
        name=row.name,
        description=row.description,
        price=Money(row.price_currency, int(row.price_amount_minor)),
        billing_period=BillingPeriod(row.billing_period),
        trial_days=row.trial_days,
        created_at=utc(row.created_at),
        version=int(row.version),
        disclosure=row.disclosure,
        price_id=row.price_id,
        archived_at=utc(row.archived_at) if row.archived_at else None,
    )
