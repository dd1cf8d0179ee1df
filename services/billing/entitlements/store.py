"""Entitlements in the billing database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.entitlements.domain import Entitlement, Source
from services.billing.store.tables import entitlements
from services.kit.database import utc
from services.kit.paging import Position
from services.kit.versioned import save_versioned


class EntitlementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, items: list[Entitlement]) -> None:
        await save_versioned(self.session, entitlements, [_values(item) for item in items], ["id"])

    async def get(self, community_id: str, entitlement_id: str) -> Entitlement | None:
        row = (
            await self.session.execute(
                select(entitlements).where(
                    entitlements.c.community_id == community_id,
                    entitlements.c.id == entitlement_id,
                )
            )
        ).first()
        return _entitlement(row) if row else None

    async def of_charge(self, charge_id: str) -> list[Entitlement]:
        rows = await self.session.execute(
            select(entitlements).where(entitlements.c.charge_id == charge_id)
        )
        return [_entitlement(row) for row in rows]

    async def newest_first(
        self, community_id: str, user_id: str, after: Position | None, limit: int
    ) -> list[Entitlement]:
        table = entitlements.c
        query = select(entitlements).where(table.community_id == community_id)
        if user_id:
            query = query.where(table.user_id == user_id)
        if after is not None:
            created, item_id = after
            query = query.where(
                or_(
                    table.created_at < created,
                    and_(table.created_at == created, table.id < item_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(table.created_at.desc(), table.id.desc()).limit(limit)
        )
        return [_entitlement(row) for row in rows]


def _values(item: Entitlement) -> dict[str, Any]:
    return {
        "id": item.id,
        "community_id": item.community_id,
        "user_id": item.user_id,
        "product_id": item.product_id,
        "source": int(item.source),
        "charge_id": item.charge_id,
        "granted_by": item.granted_by,
        "start_at": item.start_at,
        "end_at": item.end_at,
        "revoked_at": item.revoked_at,
        "created_at": item.created_at,
        "version": item.version,
    }


def _entitlement(row: Row[Any]) -> Entitlement:
    return Entitlement(
        id=row.id,
        community_id=row.community_id,
        user_id=row.user_id,
        product_id=row.product_id,
        source=Source(row.source),
        start_at=utc(row.start_at),
        end_at=utc(row.end_at) if row.end_at else None,
        created_at=utc(row.created_at),
        charge_id=row.charge_id,
        granted_by=row.granted_by,
        revoked_at=utc(row.revoked_at) if row.revoked_at else None,
        version=int(row.version),
    )
