"""gRPC handlers for entitlements: admins' grants and revocations, and who holds what."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.catalog.store import ProductRepository
from services.billing.entitlements import domain, engine
from services.billing.entitlements.store import EntitlementRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import NotFound
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp, timestamp_or_none
from services.kit.validation import Violations
from studyhall.billing.v1 import billing_service_pb2 as pb


class EntitlementsApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def GrantEntitlement(
        self, request: pb.GrantEntitlementRequest, context: grpc.aio.ServicerContext
    ) -> pb.GrantEntitlementResponse:
        caller = current_identity()
        end_at = request.end_time.ToDatetime(UTC) if request.HasField("end_time") else None
        problems = Violations()
        if end_at is not None and end_at <= datetime.now(UTC):
            problems.add("end_time", "must be in the future")
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "granting an entitlement", writable=True
        )

        async def grant(session: AsyncSession) -> pb.GrantEntitlementResponse:
            product = await ProductRepository(session).get(request.community_id, request.product_id)
            if product is None:
                raise NotFound(
                    f"product_id: product {request.product_id} not found in community "
                    f"{request.community_id}"
                )
            item = domain.granted(
                request.community_id,
                request.user_id,
                product.id,
                caller.user_id,
                end_at,
                datetime.now(UTC),
            )
            await engine.grant(session, item)
            return pb.GrantEntitlementResponse(entitlement=entitlement_to_proto(item))

        return await self.writer.write(caller.user_id, request, pb.GrantEntitlementResponse, grant)

    async def RevokeEntitlement(
        self, request: pb.RevokeEntitlementRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeEntitlementResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "revoking an entitlement", writable=True
        )

        async def revoke(session: AsyncSession) -> pb.RevokeEntitlementResponse:
            item = await EntitlementRepository(session).get(
                request.community_id, request.entitlement_id
            )
            if item is None:
                raise NotFound(
                    f"entitlement {request.entitlement_id} not found in community "
                    f"{request.community_id}"
                )
            revoked = await engine.revoke(session, item, datetime.now(UTC))
            return pb.RevokeEntitlementResponse(entitlement=entitlement_to_proto(revoked))

        return await self.writer.write(
            caller.user_id, request, pb.RevokeEntitlementResponse, revoke
        )

    async def ListEntitlements(
        self, request: pb.ListEntitlementsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEntitlementsResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["entitlements", request.community_id, request.user_id])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "reading the community's entitlements"
        )
        user_id = request.user_id
        async with self.database.read() as session:
            found = await EntitlementRepository(session).newest_first(
                request.community_id, user_id, page.after, page.size + 1
            )
        items, token = page_of(found, page, lambda item: (item.created_at, item.id))
        return pb.ListEntitlementsResponse(
            entitlements=[entitlement_to_proto(item) for item in items], next_page_token=token
        )


def entitlement_to_proto(item: domain.Entitlement) -> pb.Entitlement:
    return pb.Entitlement(
        id=item.id,
        community_id=item.community_id,
        user_id=item.user_id,
        product_id=item.product_id,
        start_time=timestamp(item.start_at),
        end_time=timestamp_or_none(item.end_at),
        source=int(item.source),
        charge_id=item.charge_id,
        revoked=item.revoked,
        version=item.version,
        granted_by_user_id=item.granted_by,
    )
