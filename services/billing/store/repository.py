from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.domain import BillingPeriod, Money, Product, ProductKind
from services.billing.store.tables import products
from services.kit.database import utc


class ProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, product: Product) -> None:
        await self.session.execute(
            products.insert().values(
                id=product.id,
                community_id=product.community_id,
                kind=int(product.kind),
                name=product.name,
                description=product.description,
                price_currency=product.price.currency,
                price_amount_minor=product.price.amount_minor,
                billing_period=int(product.billing_period),
                trial_days=product.trial_days,
                created_at=product.created_at,
                version=product.version,
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


def _product(row: Row[tuple[object, ...]]) -> Product:
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
        version=row.version,
    )
