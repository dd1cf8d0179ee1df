"""`studyhall checkout`, `refund`, `ledger`, `billing verify` and `product list|update|
archive`: a community's money, in the billing service."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import typer
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.table import Table

from services.cli.common import AsJson, AsUser, Operator, RequestId, call, metadata, out, show, stub
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc

# Registered without a name: `checkout`, `refund`, `ledger` sit at the top of `studyhall`.
money_app = typer.Typer(no_args_is_help=True)
billing_app = typer.Typer(help="A community's books: verification, charges.", no_args_is_help=True)

PageSize = Annotated[int, typer.Option(help="How many per page (at most 100; 0: the default).")]
PageToken = Annotated[str, typer.Option(help="The next page token a previous page printed.")]


def _json(message: Message) -> None:
    out.print_json(json.dumps(MessageToDict(message, preserving_proto_field_name=True)))


def add_product_commands(product_app: typer.Typer) -> None:
    """`product list`, `product update`, `product archive`, beside create and show."""

    @product_app.command("list")
    def product_list(
        community_id: str,
        include_archived: Annotated[bool, typer.Option(help="Archived ones too.")] = False,
        page_size: PageSize = 0,
        page_token: PageToken = "",
        as_user: AsUser = None,
        as_json: AsJson = False,
    ) -> None:
        """A community's products, oldest first."""
        with stub("billing", pb_grpc.BillingServiceStub) as client:
            reply = call(
                client.ListProducts,
                pb.ListProductsRequest(
                    community_id=community_id,
                    include_archived=include_archived,
                    page_size=page_size,
                    page_token=page_token,
                ),
                metadata(as_user),
            )
        if as_json:
            _json(reply)
            return
        table = Table(title="products")
        for column in ("id", "kind", "name", "price", "disclosure", "archived"):
            table.add_column(column)
        for product in reply.products:
            table.add_row(
                product.id,
                pb.ProductKind.Name(product.kind).removeprefix("PRODUCT_KIND_").lower(),
                product.name,
                f"{product.price.amount_minor} {product.price.currency} (minor units)",
                product.disclosure,
                "yes" if product.HasField("archive_time") else "",
            )
        out.print(table)
        if reply.next_page_token:
            out.print(f"next page: --page-token {reply.next_page_token}")

    @product_app.command("update")
    def product_update(
        community_id: str,
        product_id: str,
        name: Annotated[str | None, typer.Option()] = None,
        description: Annotated[str | None, typer.Option()] = None,
        disclosure: Annotated[str | None, typer.Option()] = None,
        price_minor: Annotated[
            int | None, typer.Option(help="A new price, in minor units (a new price id).")
        ] = None,
        currency: Annotated[str, typer.Option(help="Currency of the new price.")] = "",
        etag: Annotated[str, typer.Option(help="The etag you read last.")] = "",
        request_id: RequestId = "",
        as_user: AsUser = None,
        as_json: AsJson = False,
    ) -> None:
        """Change a product's name, description, disclosure or price."""
        product = pb.Product()
        paths = []
        for path, value in (
            ("name", name),
            ("description", description),
            ("disclosure", disclosure),
        ):
            if value is not None:
                setattr(product, path, value)
                paths.append(path)
        if price_minor is not None:
            product.price.CopyFrom(pb.Money(currency=currency, amount_minor=price_minor))
            paths.append("price")
        with stub("billing", pb_grpc.BillingServiceStub) as client:
            reply = call(
                client.UpdateProduct,
                pb.UpdateProductRequest(
                    request_id=request_id or str(uuid.uuid4()),
                    community_id=community_id,
                    product_id=product_id,
                    product=product,
                    update_mask=FieldMask(paths=paths),
                    etag=etag,
                ),
                metadata(as_user),
            )
        show(reply.product, as_json, "product")

    @product_app.command("archive")
    def product_archive(
        community_id: str,
        product_id: str,
        request_id: RequestId = "",
        as_user: AsUser = None,
        as_json: AsJson = False,
    ) -> None:
        """Take a product off sale."""
        with stub("billing", pb_grpc.BillingServiceStub) as client:
            reply = call(
                client.ArchiveProduct,
                pb.ArchiveProductRequest(
                    request_id=request_id or str(uuid.uuid4()),
                    community_id=community_id,
                    product_id=product_id,
                ),
                metadata(as_user),
            )
        show(reply.product, as_json, "product")


@money_app.command("checkout")
def checkout(
    community_id: str,
    product_ids: Annotated[list[str], typer.Argument(help="The products bought together.")],
    payment_method: Annotated[
        str, typer.Option(help="The provider's token: pm_card_visa, pm_card_chargeDeclined, ...")
    ] = "pm_card_visa",
    bill_to: Annotated[str, typer.Option(help="Name and address on the invoice.")] = "",
    request_id: Annotated[
        str, typer.Option(help="Idempotency key: a retry with it is never charged twice.")
    ] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Buy products of a community: prints the charge (the provider confirms it by webhook)."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.CreateCheckout,
            pb.CreateCheckoutRequest(
                request_id=request_id or str(uuid.uuid4()),
                community_id=community_id,
                product_ids=product_ids,
                payment_method=payment_method,
                bill_to=bill_to,
            ),
            metadata(as_user),
        )
    if as_json:
        _json(reply)
        return
    charge = reply.charge
    state = pb.ChargeState.Name(charge.state).removeprefix("CHARGE_STATE_").lower()
    out.print(f"charge {charge.id}: {state}")
    out.print(f"invoice {reply.invoice.number}: {reply.invoice.total_display}")
    if charge.next_action_url:
        out.print(f"authenticate at: {charge.next_action_url}")


@money_app.command("refund")
def refund(
    community_id: str,
    charge_id: str,
    amount_minor: Annotated[
        int, typer.Option(help="How much, in minor units; 0 for all that is left.")
    ] = 0,
    reason: str = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Pay back a charge in whole or in part."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.RefundCharge,
            pb.RefundChargeRequest(
                request_id=request_id or str(uuid.uuid4()),
                community_id=community_id,
                charge_id=charge_id,
                amount_minor=amount_minor,
                reason=reason,
            ),
            metadata(as_user),
        )
    show(reply.refund, as_json, "refund")


@money_app.command("ledger")
def ledger(
    community_id: str,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's balances and ledger entries (debits positive, credits negative)."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        balances = call(
            client.GetBalances,
            pb.GetBalancesRequest(community_id=community_id),
            metadata(as_user),
        )
        entries = call(
            client.ListLedgerEntries,
            pb.ListLedgerEntriesRequest(
                community_id=community_id, page_size=page_size, page_token=page_token
            ),
            metadata(as_user),
        )
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "balances": MessageToDict(balances, preserving_proto_field_name=True).get(
                        "balances", []
                    ),
                    **MessageToDict(entries, preserving_proto_field_name=True),
                }
            )
        )
        return
    table = Table(title="balances")
    for column in ("account", "currency", "balance (minor units)"):
        table.add_column(column)
    for balance in balances.balances:
        table.add_row(balance.account, balance.currency, str(balance.amount_minor))
    out.print(table)
    listing = Table(title="entries")
    for column in ("id", "transaction", "kind", "account", "amount", "currency", "charge"):
        listing.add_column(column)
    for entry in entries.entries:
        listing.add_row(
            str(entry.id),
            entry.transaction_id,
            entry.kind,
            entry.account,
            str(entry.amount_minor),
            entry.currency,
            entry.charge_id,
        )
    out.print(listing)
    if entries.next_page_token:
        out.print(f"next page: --page-token {entries.next_page_token}")


@billing_app.command("verify")
def verify(
    community_id: Annotated[
        str, typer.Option(help="One community (its admins); empty: every one (operators).")
    ] = "",
    as_user: AsUser = None,
    operator: Operator = False,
    as_json: AsJson = False,
) -> None:
    """Check every invariant of the ledger; exits 1 when one is broken."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.VerifyLedger,
            pb.VerifyLedgerRequest(community_id=community_id),
            metadata(as_user, operator=operator or not community_id),
        )
    ok = not reply.problems
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "ok": ok,
                    "problems": list(reply.problems),
                    "transactions": reply.transactions,
                    "charges": reply.charges,
                    "refunds": reply.refunds,
                }
            )
        )
    else:
        out.print(
            f"{'ok' if ok else 'BROKEN'}: {reply.transactions} transactions, {reply.charges} "
            f"charges, {reply.refunds} refunds checked"
        )
        for problem in reply.problems:
            out.print(f"  {problem}")
    if not ok:
        raise typer.Exit(1)
