"""Recording checkouts, with the checkouts that arrive together committed together.

A checkout is a few indexed reads and two inserts; under load most of its cost is the
statements around them. Checkouts that arrive while a transaction is open wait for the next
one (the kit's GroupCommitter, decision 0011), and a group is read with a statement per
table (the request ids seen before, the buyers' standings, the products named, each
community's highest invoice number) and written with one insert of its charges and one of
their invoices, as content's posts are.

A group gives the same answers as its checkouts one by one: each is decided in arrival
order, a refusal writes nothing (and takes no invoice number) and is its caller's answer,
and when the transaction itself fails every checkout in it is tried again alone. Nothing
here talks to the provider: the caller asks it to collect the charge after the commit
(services/billing/checkout/api.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.catalog.domain import Product
from services.billing.catalog.store import ProductRepository
from services.billing.checkout import domain
from services.billing.checkout.messages import charge_to_proto, invoice_to_proto
from services.billing.checkout.store import ChargeRepository, InvoiceRepository
from services.kit.access import Access, Role, Standing, check_role
from services.kit.auth import Identity
from services.kit.database import Database
from services.kit.errors import DomainError, FailedPrecondition, NotFound
from services.kit.groups import GroupCommitter
from services.kit.idempotency import (
    IdempotencyKey,
    IdempotentWriter,
    Recorded,
    fingerprint,
    replay,
)
from studyhall.billing.v1 import billing_service_pb2 as pb

METHOD = "CreateCheckout"

Pair = tuple[str, str]  # (community id, user id) or (community id, product id)


@dataclass(frozen=True)
class CheckoutCommand:
    """One caller's validated CreateCheckout request."""

    caller: Identity
    community_id: str
    product_ids: tuple[str, ...]
    payment_method: str
    bill_to: str
    key: IdempotencyKey
    digest: str = ""  # the request's fingerprint when it carries a request id, else ""

    @classmethod
    def of(cls, caller: Identity, request: pb.CreateCheckoutRequest) -> CheckoutCommand:
        return cls(
            caller=caller,
            community_id=request.community_id,
            product_ids=tuple(request.product_ids),
            payment_method=request.payment_method,
            bill_to=request.bill_to,
            key=IdempotencyKey(caller.user_id, METHOD, request.request_id),
            digest=fingerprint(request) if request.request_id else "",
        )

    @property
    def pair(self) -> Pair:
        return (self.community_id, self.caller.user_id)


class Checkouts:
    """Takes CreateCheckout commands from concurrent callers and commits them in groups."""

    def __init__(self, database: Database, access: Access, idempotent: IdempotentWriter) -> None:
        self.access = access
        self.idempotent = idempotent
        self.committer: GroupCommitter[CheckoutCommand, pb.CreateCheckoutResponse] = GroupCommitter(
            database, self._commit, on_commit=lambda: self.idempotent.on_commit()
        )

    async def create(self, command: CheckoutCommand) -> pb.CreateCheckoutResponse:
        return await self.committer.submit(command)

    async def _commit(
        self, session: AsyncSession, commands: list[CheckoutCommand]
    ) -> list[pb.CreateCheckoutResponse | DomainError]:
        recorded = await self.idempotent.recorded(
            session, METHOD, [command.key for command in commands]
        )
        fresh = [command for command in commands if command.key not in recorded]
        # Decided in the transaction, on the projection as it is now: no cached standing
        # lets a member removed a moment ago buy.
        standings = await self.access.standings(session, {command.pair for command in fresh})
        found = await ProductRepository(session).named(
            {(command.community_id, pid) for command in fresh for pid in command.product_ids}
        )
        invoices = InvoiceRepository(session)
        numbers = await invoices.next_numbers({command.community_id for command in fresh})
        now = datetime.now(UTC)
        outcomes: list[pb.CreateCheckoutResponse | DomainError] = []
        charges: list[domain.Charge] = []
        issued: list[domain.Invoice] = []
        results: list[tuple[IdempotencyKey, str, pb.CreateCheckoutResponse]] = []
        for command in commands:
            key = command.key
            try:
                if key in recorded:
                    outcomes.append(
                        replay(key, command.digest, recorded[key], pb.CreateCheckoutResponse)
                    )
                    continue
                products = _on_sale(command, standings[command.pair], found)
                charge, invoice = domain.checkout(
                    command.community_id,
                    command.caller.user_id,
                    products,
                    command.payment_method,
                    command.bill_to,
                    numbers[command.community_id],
                    now,
                )
            except DomainError as refusal:
                outcomes.append(refusal)
                continue
            numbers[command.community_id] += 1
            charges.append(charge)
            issued.append(invoice)
            response = pb.CreateCheckoutResponse(
                charge=charge_to_proto(charge), invoice=invoice_to_proto(invoice)
            )
            outcomes.append(response)
            if key.request_id:
                # A repeat of the key later in the group replays this answer.
                recorded[key] = Recorded(command.digest, response.SerializeToString())
                results.append((key, command.digest, response))
        # Invoices name their charges: the charges go first.
        await ChargeRepository(session).add_many(charges)
        await invoices.add_many(issued)
        await self.idempotent.record(session, results)
        return outcomes


def _on_sale(
    command: CheckoutCommand, standing: Standing, found: dict[Pair, Product]
) -> list[Product]:
    """The products the command names, once the buyer may buy and each is on sale."""
    community_id = command.community_id
    check_role(community_id, standing, command.caller, Role.MEMBER, "buying", writable=True)
    products = []
    for index, product_id in enumerate(command.product_ids):
        product = found.get((community_id, product_id))
        if product is None:
            raise NotFound(
                f"product_ids[{index}]: product {product_id} not found in community {community_id}"
            )
        if not product.on_sale:
            raise FailedPrecondition(
                f"product_ids[{index}]: product {product_id} is archived: not on sale"
            )
        products.append(product)
    return products
