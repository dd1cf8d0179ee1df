"""gRPC handlers for the ledger: its entries, balances and verification."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from services.billing.ledger.store import Ledger
from services.billing.ledger.verify import verify
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import PermissionDenied
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.billing.v1 import billing_service_pb2 as pb

# Ledger entries page by their id; the time in a page token is only a placeholder.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LedgerApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access

    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListLedgerEntriesResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["ledger", request.community_id], numeric=True)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "reading the ledger"
        )
        async with self.database.read() as session:
            found = await Ledger(session).entries_after(
                request.community_id, page.after_number or 0, page.size + 1
            )
        rows, token = page_of(found, page, lambda row: (_EPOCH, str(row.id)))
        return pb.ListLedgerEntriesResponse(
            entries=[
                pb.LedgerEntry(
                    id=row.id,
                    transaction_id=row.transaction_id,
                    account=row.account,
                    currency=row.currency,
                    amount_minor=int(row.amount_minor),
                    kind=row.kind,
                    charge_id=row.charge_id,
                    refund_id=row.refund_id,
                    create_time=timestamp(row.created_at),
                )
                for row in rows
            ],
            next_page_token=token,
        )

    async def GetBalances(
        self, request: pb.GetBalancesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBalancesResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "reading the ledger"
        )
        async with self.database.read() as session:
            balances = await Ledger(session).balances(request.community_id)
        return pb.GetBalancesResponse(
            balances=[
                pb.Balance(account=account, currency=currency, amount_minor=amount)
                for account, currency, amount in balances
            ]
        )

    async def VerifyLedger(
        self, request: pb.VerifyLedgerRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyLedgerResponse:
        caller = current_identity()
        if request.community_id:
            await self.access.require_role(
                request.community_id, caller, Role.ADMIN, "verifying the ledger"
            )
        elif not caller.operator:
            raise PermissionDenied(
                "community_id: verifying every community's ledger is for platform operators; "
                "name your community"
            )
        async with self.database.read() as session:
            report = await verify(session, request.community_id)
        return pb.VerifyLedgerResponse(
            problems=report.problems,
            transactions=report.transactions,
            charges=report.charges,
            refunds=report.refunds,
        )
