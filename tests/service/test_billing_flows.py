"""Money through billing, end to end on SQLite and PostgreSQL: checkouts paid through the
sandbox provider process and confirmed by its signed webhooks, declines, authentication,
full and partial refunds, scholarships, who sees money, erasure; the ledger verified after
every test (`verify` finds nothing wrong), and bad input refused naming the field with
nothing written."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import event, func, select, update

from services.billing.app import SPEC
from services.billing.checkout.checkouts import CheckoutCommand, Checkouts
from services.billing.ledger.verify import verify
from services.billing.settings import BillingSettings
from services.billing.store.tables import (
    access,
    charges,
    idempotency_keys,
    invoices,
    ledger_entries,
    outbox,
    refunds,
)
from services.kit.access import Access, Role
from services.kit.auth import Identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.idempotency import IdempotentWriter
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.billing import API_KEY, SECRET, Sandbox, deliver, sandbox, signed
from tests.support.catalogue import STORES, new_database
from tests.support.errors import field_violations
from tests.support.services import RunningService, free_port, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service


@dataclass
class Billing:
    running: RunningService
    provider: Sandbox
    webhook_url: str

    @property
    def stub(self) -> pb_grpc.BillingServiceStub:
        return pb_grpc.BillingServiceStub(self.running.channel)

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.running.auth(user)


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def provider_for(
    store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, int]]:
    port = free_port()
    directory = tmp_path_factory.mktemp(f"sandbox-{store}")
    with sandbox(directory, f"http://127.0.0.1:{port}/webhooks/provider") as provider:
        yield provider, port


@pytest.fixture(scope="module")
async def billing(
    store: str,
    provider_for: tuple[Sandbox, int],
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Billing]:
    """One billing process per store for the module, on its own sandbox provider."""
    provider, port = provider_for
    directory = tmp_path_factory.mktemp(f"billing-{store}")
    with new_database(store, request, directory) as database_url:
        async with running_service(
            SPEC,
            BillingSettings,
            database_url=database_url,
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=directory,
            relay="external",
            provider_url=provider.url,
            provider_api_key=API_KEY,
            webhook_secret=SECRET,
            webhook_port=port,
        ) as running:
            yield Billing(running, provider, f"http://127.0.0.1:{port}/webhooks/provider")


@pytest.fixture(autouse=True)
async def ledger_verified(billing: Billing) -> AsyncIterator[None]:
    """`billing verify` after every test: whatever a test did, the books hold."""
    yield
    async with billing.running.deps.database.read() as session:
        report = await verify(session)
    assert report.problems == []


async def forget_standing(billing: Billing, community_id: str, user: str) -> None:
    """Drop the service's cached standing, as a projection update would soon."""
    key = f"studyhall:billing:standing:{community_id}:{user}"
    await billing.running.deps.redis.call(lambda client: client.delete(key), None)


async def community(billing: Billing, owner: str = "olga") -> str:
    community_id = str(uuid.uuid4())
    await grant(billing.running, community_id, owner, Role.OWNER)
    for member in ("mia", "max"):
        await grant(billing.running, community_id, member, Role.MEMBER)
    return community_id


async def product(
    billing: Billing,
    community_id: str,
    *,
    amount: int = 4900,
    currency: str = "EUR",
    kind: pb.ProductKind.ValueType = pb.PRODUCT_KIND_PAID_COURSE,
    period: pb.BillingPeriod.ValueType = pb.BILLING_PERIOD_ONE_OFF,
    disclosure: str = "",
) -> pb.Product:
    made: pb.CreateProductResponse = await billing.stub.CreateProduct(
        pb.CreateProductRequest(
            community_id=community_id,
            kind=kind,
            name="Statistics from scratch",
            price=pb.Money(currency=currency, amount_minor=amount),
            billing_period=period,
            disclosure=disclosure,
        ),
        metadata=billing.auth("olga"),
    )
    product: pb.Product = made.product
    return product


async def checkout(
    billing: Billing,
    community_id: str,
    product_ids: list[str],
    *,
    buyer: str = "mia",
    method: str = "pm_card_visa",
    request_id: str = "",
) -> pb.CreateCheckoutResponse:
    bought: pb.CreateCheckoutResponse = await billing.stub.CreateCheckout(
        pb.CreateCheckoutRequest(
            request_id=request_id,
            community_id=community_id,
            product_ids=product_ids,
            payment_method=method,
            bill_to="Mia Park, 1 Library Lane",
        ),
        metadata=billing.auth(buyer),
    )
    return bought


async def charge_of(billing: Billing, community_id: str, charge_id: str) -> pb.Charge:
    listed = await billing.stub.ListCharges(
        pb.ListChargesRequest(community_id=community_id), metadata=billing.auth("olga")
    )
    found: pb.Charge = next(charge for charge in listed.charges if charge.id == charge_id)
    return found


async def settled(
    billing: Billing, community_id: str, charge_id: str, state: pb.ChargeState.ValueType
) -> pb.Charge:
    async def check() -> bool:
        charge = await charge_of(billing, community_id, charge_id)
        return charge.state == state

    await eventually(check, f"charge {charge_id} in state {pb.ChargeState.Name(state)}")
    return await charge_of(billing, community_id, charge_id)


async def count(billing: Billing, table: object, **where: str) -> int:
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    for name, value in where.items():
        query = query.where(table.c[name] == value)  # type: ignore[attr-defined]
    async with billing.running.deps.database.read() as session:
        return int(await session.scalar(query) or 0)


async def event_types(billing: Billing, community_id: str) -> list[str]:
    async with billing.running.deps.database.read() as session:
        rows = await session.execute(
            select(outbox.c.event_type)
            .where(outbox.c.community_id == community_id)
            .order_by(outbox.c.seq)
        )
        return [row[0].rsplit(".", 1)[-1] for row in rows]


async def test_member_buys_a_course_the_webhook_confirms_it_and_the_ledger_balances(
    billing: Billing,
) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id, amount=4999)

    bought = await checkout(billing, community_id, [course.id])
    assert bought.charge.state == pb.CHARGE_STATE_PENDING
    assert bought.charge.provider_payment_id.startswith("pi_")
    assert bought.invoice.total == pb.Money(currency="EUR", amount_minor=4999)
    assert bought.invoice.total_display == "49.99 EUR"
    assert [line.kind for line in bought.invoice.lines] == ["item"]
    assert bought.invoice.tax.amount_minor == 0
    assert bought.invoice.number == 1

    await settled(billing, community_id, bought.charge.id, pb.CHARGE_STATE_SUCCEEDED)
    mine = await billing.stub.GetMyBilling(
        pb.GetMyBillingRequest(community_id=community_id), metadata=billing.auth("mia")
    )
    assert [e.product_id for e in mine.entitlements] == [course.id]
    assert not mine.entitlements[0].HasField("end_time")  # a one-off purchase is for good
    assert [invoice.bill_to for invoice in mine.invoices] == ["Mia Park, 1 Library Lane"]
    balances = await billing.stub.GetBalances(
        pb.GetBalancesRequest(community_id=community_id), metadata=billing.auth("olga")
    )
    assert {(b.account, b.amount_minor) for b in balances.balances} == {
        ("provider_cash", 4999),
        ("revenue", -4999),
    }
    assert await event_types(billing, community_id) == ["EntitlementGranted", "CheckoutCompleted"]


async def test_zero_decimal_currency_is_charged_in_whole_yen(billing: Billing) -> None:
    community_id = await community(billing)
    ticket = await product(
        billing, community_id, amount=1500, currency="JPY", kind=pb.PRODUCT_KIND_EVENT_TICKET
    )
    bought = await checkout(billing, community_id, [ticket.id])
    assert bought.invoice.total_display == "1500 JPY"
    await settled(billing, community_id, bought.charge.id, pb.CHARGE_STATE_SUCCEEDED)


async def test_retries_with_one_idempotency_key_charge_once(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id)
    first = await checkout(billing, community_id, [course.id], request_id="buy-1")
    again = await checkout(billing, community_id, [course.id], request_id="buy-1")

    assert again.charge.id == first.charge.id
    assert again.charge.provider_payment_id == first.charge.provider_payment_id
    await settled(billing, community_id, first.charge.id, pb.CHARGE_STATE_SUCCEEDED)
    assert await count(billing, charges, community_id=community_id) == 1
    assert await count(billing, invoices, community_id=community_id) == 1
    # Billing asked the provider twice with one key: the provider holds one payment.
    paid = [e for e in await billing.provider.events() if e["type"] == "payment_intent.succeeded"]
    assert len({e["id"] for e in paid}) == len(paid)


async def test_declined_card_fails_the_charge_and_moves_no_money(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id)
    bought = await checkout(billing, community_id, [course.id], method="pm_card_chargeDeclined")

    failed = await settled(billing, community_id, bought.charge.id, pb.CHARGE_STATE_FAILED)
    assert failed.failure_reason == "declined"
    assert await count(billing, ledger_entries, community_id=community_id) == 0
    assert await event_types(billing, community_id) == ["PaymentFailed"]


async def test_unknown_payment_method_fails_the_charge_at_once(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id)
    bought = await checkout(billing, community_id, [course.id], method="pm_card_unheard_of")
    assert bought.charge.state == pb.CHARGE_STATE_FAILED
    assert bought.charge.failure_reason == "payment_method_unusable"


async def test_payment_waits_for_authentication_then_succeeds(billing: Billing) -> None:
    community_id = await community(billing)
    plan = await product(
        billing,
        community_id,
        amount=499,
        kind=pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
        period=pb.BILLING_PERIOD_MONTHLY,
    )
    bought = await checkout(
        billing, community_id, [plan.id], method="pm_card_authenticationRequired"
    )
    assert bought.charge.state == pb.CHARGE_STATE_REQUIRES_ACTION
    assert bought.charge.next_action_url.endswith("/authenticate")

    path = bought.charge.next_action_url.removeprefix(billing.provider.url)
    await billing.provider.post(path)
    await settled(billing, community_id, bought.charge.id, pb.CHARGE_STATE_SUCCEEDED)
    listed = await billing.stub.ListEntitlements(
        pb.ListEntitlementsRequest(community_id=community_id, user_id="mia"),
        metadata=billing.auth("olga"),
    )
    (entitlement,) = listed.entitlements
    assert entitlement.source == 2  # a subscription's period
    assert (entitlement.end_time.seconds - entitlement.start_time.seconds) == 31 * 86400


async def test_partial_then_full_refund_and_never_more_than_was_paid(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id, amount=5000)
    bought = await checkout(billing, community_id, [course.id])
    await settled(billing, community_id, bought.charge.id, pb.CHARGE_STATE_SUCCEEDED)

    def refund(amount: int) -> pb.RefundChargeRequest:
        return pb.RefundChargeRequest(
            community_id=community_id, charge_id=bought.charge.id, amount_minor=amount
        )

    part = await billing.stub.RefundCharge(refund(2000), metadata=billing.auth("olga"))
    assert part.refund.amount.amount_minor == 2000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await billing.stub.RefundCharge(refund(3001), metadata=billing.auth("olga"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"amount_minor"}
    assert await count(billing, refunds, charge_id=bought.charge.id) == 1

    rest = await billing.stub.RefundCharge(refund(0), metadata=billing.auth("olga"))
    assert rest.refund.amount.amount_minor == 3000

    async def paid_back() -> bool:
        charge = await charge_of(billing, community_id, bought.charge.id)
        return charge.refunded_minor == 5000

    await eventually(paid_back, "the charge paid back in full")
    mine = await billing.stub.GetMyBilling(
        pb.GetMyBillingRequest(community_id=community_id), metadata=billing.auth("mia")
    )
    assert [entitlement.revoked for entitlement in mine.entitlements] == [True]
    assert sorted(r.amount.amount_minor for r in mine.refunds) == [2000, 3000]
    types = await event_types(billing, community_id)
    assert types.count("Refunded") == 2
    assert types[-1] == "Refunded"
    assert "EntitlementRevoked" in types
    with pytest.raises(grpc.aio.AioRpcError) as full:
        await billing.stub.RefundCharge(refund(0), metadata=billing.auth("olga"))
    assert full.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_one_invoice_holds_one_currency(billing: Billing) -> None:
    community_id = await community(billing)
    euros = await product(billing, community_id, currency="EUR")
    yen = await product(billing, community_id, currency="JPY")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await checkout(billing, community_id, [euros.id, yen.id])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"product_ids[1]"}
    assert await count(billing, charges, community_id=community_id) == 0


async def test_archived_products_and_communities_sell_nothing(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id)
    await billing.stub.ArchiveProduct(
        pb.ArchiveProductRequest(community_id=community_id, product_id=course.id),
        metadata=billing.auth("olga"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await checkout(billing, community_id, [course.id])
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "product_ids[0]" in (caught.value.details() or "")
    listed = await billing.stub.ListProducts(
        pb.ListProductsRequest(community_id=community_id), metadata=billing.auth("mia")
    )
    assert list(listed.products) == []
    assert await count(billing, charges, community_id=community_id) == 0


async def test_sponsorship_discloses_its_sponsor_to_members(billing: Billing) -> None:
    community_id = await community(billing)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await product(billing, community_id, kind=pb.PRODUCT_KIND_SPONSORSHIP)
    assert set(field_violations(caught.value)) == {"disclosure"}
    placed = await product(
        billing,
        community_id,
        kind=pb.PRODUCT_KIND_SPONSORSHIP,
        disclosure="Sponsored by Acme Books; they see no member data.",
    )
    read = await billing.stub.GetProduct(
        pb.GetProductRequest(community_id=community_id, product_id=placed.id),
        metadata=billing.auth("max"),
    )
    assert read.product.disclosure == "Sponsored by Acme Books; they see no member data."


async def test_a_new_price_is_a_new_price_and_a_stale_etag_is_refused(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id, amount=4900)
    changed = await billing.stub.UpdateProduct(
        pb.UpdateProductRequest(
            community_id=community_id,
            product_id=course.id,
            product=pb.Product(price=pb.Money(currency="EUR", amount_minor=3900)),
            update_mask=FieldMask(paths=["price"]),
            etag=course.etag,
        ),
        metadata=billing.auth("olga"),
    )
    assert changed.product.price.amount_minor == 3900
    assert changed.product.price_id != course.price_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await billing.stub.UpdateProduct(
            pb.UpdateProductRequest(
                community_id=community_id,
                product_id=course.id,
                product=pb.Product(name="Renamed"),
                update_mask=FieldMask(paths=["name"]),
                etag=course.etag,
            ),
            metadata=billing.auth("olga"),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    bought = await checkout(billing, community_id, [course.id])
    assert [line.price_id for line in bought.invoice.lines] == [changed.product.price_id]
    await settled(billing, community_id, bought.charge.id, pb.CHARGE_STATE_SUCCEEDED)


async def test_members_see_only_their_own_money_and_admins_see_all(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id)
    mias = await checkout(billing, community_id, [course.id], buyer="mia")
    maxs = await checkout(billing, community_id, [course.id], buyer="max")

    mine = await billing.stub.GetMyBilling(
        pb.GetMyBillingRequest(community_id=community_id), metadata=billing.auth("mia")
    )
    assert [charge.id for charge in mine.charges] == [mias.charge.id]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await billing.stub.ListCharges(
            pb.ListChargesRequest(community_id=community_id), metadata=billing.auth("mia")
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await billing.stub.GetMyBilling(
            pb.GetMyBillingRequest(community_id=community_id, user_id="max"),
            metadata=billing.auth("mia"),
        )
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await billing.stub.ListCharges(
        pb.ListChargesRequest(community_id=community_id), metadata=billing.auth("olga")
    )
    assert {charge.id for charge in listed.charges} == {mias.charge.id, maxs.charge.id}
    for bought in (mias, maxs):
        await settled(billing, community_id, bought.charge.id, pb.CHARGE_STATE_SUCCEEDED)


async def test_admin_grants_a_scholarship_and_takes_it_back(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id)
    granted = await billing.stub.GrantEntitlement(
        pb.GrantEntitlementRequest(community_id=community_id, user_id="max", product_id=course.id),
        metadata=billing.auth("olga"),
    )
    assert granted.entitlement.source == 3
    assert granted.entitlement.granted_by_user_id == "olga"
    revoked = await billing.stub.RevokeEntitlement(
        pb.RevokeEntitlementRequest(
            community_id=community_id, entitlement_id=granted.entitlement.id
        ),
        metadata=billing.auth("olga"),
    )
    assert revoked.entitlement.revoked
    assert revoked.entitlement.version == 2
    assert await event_types(billing, community_id) == ["EntitlementGranted", "EntitlementRevoked"]


async def test_erasure_keeps_the_amounts_and_forgets_the_buyer(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id, amount=1234)
    bought = await checkout(billing, community_id, [course.id])
    await settled(billing, community_id, bought.charge.id, pb.CHARGE_STATE_SUCCEEDED)

    await billing.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=community_id, confirm=True),
        metadata=billing.auth("mia"),
    )
    listed = await billing.stub.ListInvoices(
        pb.ListInvoicesRequest(community_id=community_id), metadata=billing.auth("olga")
    )
    (invoice,) = listed.invoices
    assert invoice.total.amount_minor == 1234
    assert (invoice.user_id, invoice.bill_to) == ("", "")
    assert await count(billing, charges, user_id="mia", community_id=community_id) == 0


# ---- the webhook endpoint --------------------------------------------------------------


def succeeded_event(charge: pb.Charge, event_id: str = "") -> dict[str, object]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": charge.provider_payment_id,
                "amount": charge.amount.amount_minor,
                "currency": charge.amount.currency.lower(),
                "status": "succeeded",
                "metadata": {"charge_id": charge.id},
            }
        },
    }


async def waiting_charge(billing: Billing) -> tuple[str, pb.Charge]:
    """A charge the sandbox holds in requires_action: only the test's events move it."""
    community_id = await community(billing)
    course = await product(billing, community_id)
    bought = await checkout(
        billing, community_id, [course.id], method="pm_card_authenticationRequired"
    )
    return community_id, bought.charge


@pytest.mark.parametrize(
    ("signature", "named"),
    [
        ("", "Stripe-Signature header is missing"),
        ("t=1,v1=00", "outside the 300 s tolerance"),
        ("v1=abc", "must carry t=<unix time>"),
        ("bad", "must carry t=<unix time>"),
    ],
)
async def test_webhook_with_a_bad_signature_is_refused_and_changes_nothing(
    billing: Billing, signature: str, named: str
) -> None:
    community_id, charge = await waiting_charge(billing)
    payload, _ = signed(succeeded_event(charge))
    status, message = await deliver(billing.webhook_url, payload, signature)
    assert status == 400
    assert named in message
    assert (await charge_of(billing, community_id, charge.id)).state != pb.CHARGE_STATE_SUCCEEDED


async def test_webhook_signed_with_another_secret_or_replayed_is_refused(billing: Billing) -> None:
    community_id, charge = await waiting_charge(billing)
    forged, forged_signature = signed(succeeded_event(charge), secret="whsec_someone_else")
    status, message = await deliver(billing.webhook_url, forged, forged_signature)
    assert (status, message) == (400, "Stripe-Signature v1 signature does not match the payload")

    old, old_signature = signed(succeeded_event(charge), at=int(time.time()) - 3600)
    status, message = await deliver(billing.webhook_url, old, old_signature)
    assert status == 400
    assert "replayed or delayed" in message
    assert await count(billing, ledger_entries, community_id=community_id) == 0


async def test_redelivered_and_late_events_are_applied_once(billing: Billing) -> None:
    community_id, charge = await waiting_charge(billing)
    event = succeeded_event(charge, "evt_once")
    for _ in range(2):
        status, _message = await deliver(billing.webhook_url, *signed(event))
        assert status == 200
    # A "requires_action" that was overtaken arrives last: the paid charge stays paid.
    late = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "payment_intent.requires_action",
        "data": {"object": dict(event["data"]["object"], status="requires_action")},  # type: ignore[index]
    }
    status, message = await deliver(billing.webhook_url, *signed(late))
    assert (status, message) == (200, "stale")
    declined = dict(late, id=f"evt_{uuid.uuid4().hex}", type="payment_intent.payment_failed")
    assert (await deliver(billing.webhook_url, *signed(declined)))[1] == "stale"

    assert (await charge_of(billing, community_id, charge.id)).state == pb.CHARGE_STATE_SUCCEEDED
    assert await count(billing, ledger_entries, community_id=community_id) == 2
    assert (await event_types(billing, community_id)).count("CheckoutCompleted") == 1


async def test_an_archived_community_sells_nothing_and_changes_no_price(billing: Billing) -> None:
    community_id = await community(billing)
    course = await product(billing, community_id)
    async with billing.running.deps.database.write() as session:
        await session.execute(
            update(access.communities)
            .where(access.communities.c.community_id == community_id)
            .values(archived=True)
        )
    for user in ("olga", "mia"):
        await forget_standing(billing, community_id, user)

    with pytest.raises(grpc.aio.AioRpcError) as bought:
        await checkout(billing, community_id, [course.id])
    assert bought.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "archived" in (bought.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as sold:
        await product(billing, community_id)
    assert sold.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await count(billing, charges, community_id=community_id) == 0


async def test_a_burst_of_checkouts_commits_in_few_transactions_each_caller_its_own_answer(
    billing: Billing,
) -> None:
    """Checkouts that arrive together in two communities are decided a group at a time
    (services/billing/checkout/checkouts.py): a few commits for the burst, each buyer its
    own charge, refusals and replays among them, and invoice numbers unique and consecutive
    per community."""
    first, second = await community(billing), await community(billing)
    buyers = [f"buyer-{n}" for n in range(24)]
    for user in buyers:
        await grant(billing.running, first, user)
        await grant(billing.running, second, user)
    courses = {first: await product(billing, first), second: await product(billing, second)}
    archived = await product(billing, first)
    await billing.stub.ArchiveProduct(
        pb.ArchiveProductRequest(community_id=first, product_id=archived.id),
        metadata=billing.auth("olga"),
    )

    def request(community_id: str, *product_ids: str, request_id: str = "") -> Any:
        return pb.CreateCheckoutRequest(
            request_id=request_id or str(uuid.uuid4()),
            community_id=community_id,
            product_ids=list(product_ids) or [courses[community_id].id],
            payment_method="pm_card_visa",
            bill_to=f"Buyer of {community_id}",
        )

    # Two replicas, each with its engines and its committer, numbering the same communities.
    url = billing.running.deps.settings.effective_database_url()
    databases = [Database(url), Database(url)]
    commits: list[int] = []

    def on_commit(_connection: Any) -> None:
        commits.append(1)

    try:
        deps = billing.running.deps
        checks = Access("billing", deps.database, access, deps.redis)
        replicas = [
            Checkouts(database, checks, IdempotentWriter(database, idempotency_keys))
            for database in databases
        ]
        earlier = str(uuid.uuid4())
        await replicas[0].create(
            CheckoutCommand.of(Identity(buyers[0]), request(first, request_id=earlier))
        )
        repeated = str(uuid.uuid4())
        calls = [(user, request(first if n % 2 else second)) for n, user in enumerate(buyers)]
        calls[3] = (buyers[3], request(first, courses[first].id, archived.id))
        calls[7] = (buyers[7], request(second, str(uuid.uuid4())))
        calls[9] = (buyers[9], request(first, request_id=repeated))
        calls[15] = (buyers[9], request(first, request_id=repeated))  # the same replica's
        calls[12] = (buyers[0], request(second, request_id=earlier))  # another request
        calls[20] = (buyers[20], request(second, courses[first].id))  # another community's
        for database in databases:
            event.listen(database.writer.sync_engine, "commit", on_commit)
        outcomes = await asyncio.gather(
            *(
                replicas[n % 2].create(CheckoutCommand.of(Identity(user), asked))
                for n, (user, asked) in enumerate(calls)
            ),
            return_exceptions=True,
        )
    finally:
        for database in databases:
            await database.close()
    # A group that lost the race for an invoice number would send each of its checkouts
    # again alone: two replicas' bursts still take a few commits each.
    assert len(commits) < len(calls) // 3, commits
    refused = {3: FailedPrecondition, 7: NotFound, 12: FailedPrecondition, 20: NotFound}
    for index, ((user, asked), outcome) in enumerate(zip(calls, outcomes, strict=True)):
        if index in refused:
            assert isinstance(outcome, refused[index]), (index, outcome)
            continue
        assert isinstance(outcome, pb.CreateCheckoutResponse), (index, outcome)
        assert outcome.charge.user_id == outcome.invoice.user_id == user
        assert outcome.charge.community_id == asked.community_id
        assert list(outcome.charge.product_ids) == list(asked.product_ids)
    assert f"product_ids[1]: product {archived.id} is archived" in str(outcomes[3])
    assert "product_ids[0]" in str(outcomes[7])
    assert "product_ids[0]" in str(outcomes[20])
    assert earlier in str(outcomes[12])
    assert outcomes[15] == outcomes[9]
    made = [o for o in outcomes if isinstance(o, pb.CreateCheckoutResponse)]
    assert len({o.charge.id for o in made}) == len(calls) - len(refused) - 1
    for community_id in (first, second):
        async with billing.running.deps.database.read() as session:
            numbers = list(
                await session.scalars(
                    select(invoices.c.number).where(invoices.c.community_id == community_id)
                )
            )
        # Unique and consecutive from 1: a refusal takes no number.
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
        assert await count(billing, charges, community_id=community_id) == len(numbers)
    in_first = {o.charge.id for o in made if o.charge.community_id == first}
    # The checkout before the burst, and the burst's own.
    assert await count(billing, invoices, community_id=first) == 1 + len(in_first)
