"""Charges, refunds and invoices as the API's messages: what CreateCheckout answers and
records for its replays, and what the reads return."""

from __future__ import annotations

from services.billing.checkout import domain
from services.kit.timestamps import timestamp
from studyhall.billing.v1 import billing_service_pb2 as pb


def _money(currency: str, amount: int) -> pb.Money:
    return pb.Money(currency=currency, amount_minor=amount)


def charge_to_proto(charge: domain.Charge) -> pb.Charge:
    return pb.Charge(
        id=charge.id,
        community_id=charge.community_id,
        user_id=charge.user_id,
        amount=_money(charge.currency, charge.amount_minor),
        state=pb.ChargeState.ValueType(charge.state),
        product_ids=list(charge.product_ids),
        provider_payment_id=charge.provider_payment_id,
        next_action_url=charge.next_action_url,
        failure_reason=charge.failure_reason,
        refunded_minor=charge.refunded_minor,
        create_time=timestamp(charge.created_at),
        update_time=timestamp(charge.updated_at),
    )


def refund_to_proto(refund: domain.Refund) -> pb.Refund:
    return pb.Refund(
        id=refund.id,
        community_id=refund.community_id,
        charge_id=refund.charge_id,
        user_id=refund.user_id,
        amount=_money(refund.currency, refund.amount_minor),
        state=pb.RefundState.ValueType(refund.state),
        reason=refund.reason,
        by_user_id=refund.by_user_id,
        provider_refund_id=refund.provider_refund_id,
        create_time=timestamp(refund.created_at),
        update_time=timestamp(refund.updated_at),
    )


def invoice_to_proto(invoice: domain.Invoice) -> pb.Invoice:
    return pb.Invoice(
        id=invoice.id,
        community_id=invoice.community_id,
        charge_id=invoice.charge_id,
        user_id=invoice.user_id,
        number=invoice.number,
        lines=[
            pb.InvoiceLine(
                description=line.description,
                product_id=line.product_id,
                price_id=line.price_id,
                amount=_money(invoice.currency, line.amount_minor),
                kind=line.kind,
            )
            for line in invoice.lines
        ],
        subtotal=_money(invoice.currency, invoice.subtotal_minor),
        tax=_money(invoice.currency, invoice.tax_minor),
        total=_money(invoice.currency, invoice.total_minor),
        total_display=invoice.total_display,
        bill_to=invoice.bill_to,
        create_time=timestamp(invoice.created_at),
    )
