"""gRPC handler for selling an activity's seats as a ticket (docs/decisions/0047)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import check_scheduled
from services.events.activities.events import ActivityEvents
from services.events.activities.lookup import (
    organized_activity,
)
from services.events.activities.messages import to_proto
from services.events.activities.store import ActivityRepository
from services.kit.access import Access
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition
from services.kit.grouped_writes import Writer
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb


class TicketsApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def SetActivityTicket(
        self, request: pb.SetActivityTicketRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetActivityTicketResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.uuid("product_id", request.product_id, required=False)
        problems.raise_if_any()
        standing = await self.access.require_writable(
            request.community_id, caller, "selling an activity's tickets"
        )

        async def sell(session: AsyncSession) -> pb.SetActivityTicketResponse:
            activity = await organized_activity(
                session,
                request.community_id,
                request.activity_id,
                standing,
                caller,
                "selling an activity's tickets",
            )
            check_scheduled(activity, "sold")
            now = datetime.now(UTC)
            if activity.start_time <= now:
                raise FailedPrecondition(f"activity {activity.id} has started")
            if activity.ticket_product_id == request.product_id:
                return pb.SetActivityTicketResponse(activity=to_proto(activity))
            if activity.seats_taken or activity.waitlist_length:
                # Those registered came in on other terms: a price is set before anyone.
                raise FailedPrecondition(
                    f"activity {activity.id} has registrations; its ticket is set before any"
                )
            sold = replace(
                activity, ticket_product_id=request.product_id, version=activity.version + 1
            )
            await ActivityRepository(session).save(sold)
            await ActivityEvents(session).updated(sold, ["ticket_product_id"], caller.user_id, now)
            return pb.SetActivityTicketResponse(activity=to_proto(sold))

        return await self.writer.write(caller.user_id, request, pb.SetActivityTicketResponse, sell)
