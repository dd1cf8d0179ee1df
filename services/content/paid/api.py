"""The gRPC handler that makes a post paid, or free again: its author's call, as any other
change of the post."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.paid.domain import PRODUCT_ID_MAX
from services.content.paid.events import PaidEvents
from services.content.paid.gate import PaidGate
from services.content.paid.store import set_post_product
from services.content.posts.messages import present
from services.content.posts.ownership import own_post
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.grouped_writes import Writer
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb


class PaidApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        self.gate = PaidGate()

    async def SetPostProduct(
        self, request: pb.SetPostProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetPostProductResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        problems.text("product_id", request.product_id, required=False, max_length=PRODUCT_ID_MAX)
        if request.product_id != request.product_id.strip():
            problems.add("product_id", "must not start or end with spaces")
        problems.raise_if_any()
        standing = await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "pricing a post", writable=True
        )

        async def price(session: AsyncSession) -> pb.SetPostProductResponse:
            post = await own_post(session, request.community_id, request.post_id, caller)
            now = datetime.now(UTC)
            await set_post_product(
                session, post.community_id, post.id, request.product_id, caller.user_id, now
            )
            await PaidEvents(session).product_changed(
                post.community_id, post.id, request.product_id, caller.user_id, now
            )
            [shown] = await present(session, [post])
            await self.gate.guard(session, caller, standing, [shown])
            return pb.SetPostProductResponse(post=shown)

        return await self.writer.write(caller.user_id, request, pb.SetPostProductResponse, price)
