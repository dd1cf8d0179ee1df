"""gRPC handlers for checkouts, charges, refunds and invoices.

CreateCheckout records the charge and its invoice together with the checkouts that arrive
with it (services/billing/checkout/checkouts.py; the request id is the idempotency key),
then asks the provider to collect it, with the charge id as the provider's idempotency key:
a retry replays the recorded checkout and asks the provider again, which answers with the
payment it already has. Whether the charge is paid
is the provider's webhook's to say (services/billing/checkout/confirm.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.checkout import domain, events
from services.billing.checkout.checkouts import CheckoutCommand, Checkouts
from services.billing.checkout.domain import ChargeState, RefundState
from services.billing.checkout.messages import charge_to_proto, invoice_to_proto, refund_to_proto
from services.billing.checkout.store import ChargeRepository, InvoiceRepository, RefundRepository
from services.billing.entitlements.api import entitlement_to_proto
from services.billing.entitlements.store import EntitlementRepository
from services.billing.payments.provider import PaymentProvider, ProviderRefused
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.data_rights_api import data_subject
from services.kit.database import Database
from services.kit.errors import NotFound
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations
from studyhall.billing.v1 import billing_service_pb2 as pb

# What GetMyBilling returns of each kind: a member's history in one community is short.
MINE = 100


class CheckoutApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        checkouts: Checkouts,
        provider: PaymentProvider,
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        self.checkouts = checkouts
        self.provider = provider

    async def CreateCheckout(
        self, request: pb.CreateCheckoutRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCheckoutResponse:
        caller = current_identity()
        problems = Violations()
        if not request.payment_method.isprintable():
            problems.add("payment_method", "must be the provider's token, e.g. pm_card_visa")
        problems.raise_if_any()

        recorded = await self.checkouts.create(CheckoutCommand.of(caller, request))
        charge = await self.submit(recorded.charge, request.payment_method)
        return pb.CreateCheckoutResponse(charge=charge, invoice=recorded.invoice)

    async def submit(self, recorded: pb.Charge, payment_method: str) -> pb.Charge:
        """Ask the provider to collect the charge, once per charge whatever the retries (the
        charge id is the provider's idempotency key: a replayed checkout is asked again and
        the provider answers with the payment it already has). Nothing is written here: the
        provider's webhooks bring its payment id and every change of state, so the call
        ends at the provider call (bench/RESULTS.md, billing)."""
        try:
            payment = await self.provider.create_payment(
                idempotency_key=recorded.id,
                amount_minor=recorded.amount.amount_minor,
                currency=recorded.amount.currency,
                payment_method=payment_method,
                metadata={"charge_id": recorded.id, "community_id": recorded.community_id},
            )
        except ProviderRefused as error:
            # The provider will never collect it (an unknown payment method, say): the charge
            # fails now, as a decline would, and the caller sees why.
            return charge_to_proto(await self._refused(recorded.id, str(error)))
        charge = pb.Charge()
        charge.CopyFrom(recorded)
        charge.provider_payment_id = payment.id
        if payment.status == "requires_action" and charge.state == pb.CHARGE_STATE_PENDING:
            charge.state = pb.CHARGE_STATE_REQUIRES_ACTION
            charge.next_action_url = payment.next_action_url
        return charge

    async def _refused(self, charge_id: str, why: str) -> domain.Charge:
        async with self.database.write() as session:
            charges = ChargeRepository(session)
            current = await charges.get(charge_id, for_update=True)
            assert current is not None
            failed = domain.moved(
                current,
                ChargeState.FAILED,
                datetime.now(UTC),
                failure_reason="payment_method_unusable",
            )
            if failed is None:
                return current
            await charges.save(failed)
            await events.failed(session, failed, datetime.now(UTC))
        return failed

    async def GetMyBilling(
        self, request: pb.GetMyBillingRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMyBillingResponse:
        caller = current_identity()
        user_id = data_subject(caller, request.user_id)
        community_id = request.community_id
        async with self.database.read() as session:
            charges = await ChargeRepository(session).newest_first(
                community_id, user_id, None, MINE
            )
            refunds = await RefundRepository(session).newest_first(
                community_id, user_id, None, MINE
            )
            invoices = await InvoiceRepository(session).newest_first(
                community_id, user_id, None, MINE
            )
            entitlements = await EntitlementRepository(session).newest_first(
                community_id, user_id, None, MINE
            )
        return pb.GetMyBillingResponse(
            charges=[charge_to_proto(item) for item in charges],
            refunds=[refund_to_proto(item) for item in refunds],
            invoices=[invoice_to_proto(item) for item in invoices],
            entitlements=[entitlement_to_proto(item) for item in entitlements],
        )

    async def ListCharges(
        self, request: pb.ListChargesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListChargesResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["charges", request.community_id, request.user_id])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "reading the community's money"
        )
        user_id = request.user_id
        async with self.database.read() as session:
            found = await ChargeRepository(session).newest_first(
                request.community_id, user_id, page.after, page.size + 1
            )
        items, token = page_of(found, page, lambda item: (item.created_at, item.id))
        return pb.ListChargesResponse(
            charges=[charge_to_proto(item) for item in items], next_page_token=token
        )

    async def RefundCharge(
        self, request: pb.RefundChargeRequest, context: grpc.aio.ServicerContext
    ) -> pb.RefundChargeResponse:
        caller = current_identity()
        problems = Violations()
        if request.amount_minor < 0:
            problems.add("amount_minor", "must be zero (all that is left) or more")
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "refunding a charge", writable=True
        )

        async def record(session: AsyncSession) -> pb.RefundChargeResponse:
            charge = await ChargeRepository(session).get(request.charge_id, request.community_id)
            if charge is None:
                raise NotFound(
                    f"charge {request.charge_id} not found in community {request.community_id}"
                )
            taken = await RefundRepository(session).total(
                charge.id, [RefundState.PENDING, RefundState.SUCCEEDED]
            )
            refund = domain.new_refund(
                charge,
                request.amount_minor,
                domain.refundable(charge, taken),
                caller.user_id,
                request.reason,
                datetime.now(UTC),
            )
            await RefundRepository(session).add(refund)
            return pb.RefundChargeResponse(refund=refund_to_proto(refund))

        recorded = await self.writer.write(caller.user_id, request, pb.RefundChargeResponse, record)
        refund = await self.submit_refund(recorded.refund.id)
        return pb.RefundChargeResponse(refund=refund_to_proto(refund))

    async def submit_refund(self, refund_id: str) -> domain.Refund:
        async with self.database.read() as session:
            refunds = RefundRepository(session)
            refund = await refunds.get(refund_id)
            assert refund is not None
            charge = await ChargeRepository(session).get(refund.charge_id)
            assert charge is not None
        if refund.provider_refund_id or refund.state is not RefundState.PENDING:
            return refund
        try:
            answer = await self.provider.create_refund(
                idempotency_key=refund.id,
                payment_id=charge.provider_payment_id,
                amount_minor=refund.amount_minor,
                metadata={"refund_id": refund.id, "charge_id": charge.id},
            )
        except ProviderRefused as error:
            async with self.database.write() as session:
                refunds = RefundRepository(session)
                current = await refunds.get(refund_id, for_update=True)
                assert current is not None
                if current.state is not RefundState.PENDING:
                    return current
                failed = domain.refund_refused(current, str(error), datetime.now(UTC))
                await refunds.save(failed)
                return failed
        async with self.database.write() as session:
            refunds = RefundRepository(session)
            current = await refunds.get(refund_id, for_update=True)
            assert current is not None
            if current.provider_refund_id:
                return current
            updated = domain.refund_submitted(current, answer.id)
            await refunds.save(updated)
            return updated

    async def ListRefunds(
        self, request: pb.ListRefundsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRefundsResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["refunds", request.community_id, request.user_id])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "reading the community's money"
        )
        user_id = request.user_id
        async with self.database.read() as session:
            found = await RefundRepository(session).newest_first(
                request.community_id, user_id, page.after, page.size + 1
            )
        items, token = page_of(found, page, lambda item: (item.created_at, item.id))
        return pb.ListRefundsResponse(
            refunds=[refund_to_proto(item) for item in items], next_page_token=token
        )

    async def ListInvoices(
        self, request: pb.ListInvoicesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInvoicesResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["invoices", request.community_id, request.user_id])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "reading the community's money"
        )
        user_id = request.user_id
        async with self.database.read() as session:
            found = await InvoiceRepository(session).newest_first(
                request.community_id, user_id, page.after, page.size + 1
            )
        items, token = page_of(found, page, lambda item: (item.created_at, item.id))
        return pb.ListInvoicesResponse(
            invoices=[invoice_to_proto(item) for item in items], next_page_token=token
        )
