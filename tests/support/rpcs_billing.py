"""The billing service in the request catalogue (tests/support/catalogue.py).

CreateCheckout asks a payment provider: the catalogue's billing processes share one sandbox
provider process for the test run, started by the first world that needs it. Its webhooks
go nowhere (the processes run quiet, so only the calls change the database); a world's paid
charge is confirmed as the webhook would confirm it, through the service's own
`Confirmations`."""

from __future__ import annotations

import atexit
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask

from services.billing.app import SPEC
from services.billing.checkout.confirm import Confirmations
from services.billing.payments.webhooks import ProviderEvent
from services.billing.settings import BillingSettings
from services.billing.store.tables import metadata
from services.kit.access import Role
from studyhall.billing.v1 import billing_service_pb2 as pb
from tests.support.access import grant
from tests.support.billing import API_KEY, sandbox
from tests.support.catalogue import Process, Rpc, World, data_rights_entries, new_id
from tests.support.services import RunningService, free_port

BILLING = pb.DESCRIPTOR.services_by_name["BillingService"]
OWNER = "olga"
SCHOLAR = "sam"

_PROVIDER: dict[str, str] = {}
_STOP = ExitStack()
atexit.register(_STOP.close)


def provider_url() -> str:
    """The run's sandbox provider, started on first use."""
    if "url" not in _PROVIDER:
        directory = Path(tempfile.mkdtemp(prefix="catalogue-sandbox-"))
        nowhere = f"http://127.0.0.1:{free_port()}/webhooks/provider"
        _PROVIDER["url"] = _STOP.enter_context(sandbox(directory, nowhere)).url
    return _PROVIDER["url"]


def _product(world: World) -> pb.CreateProductRequest:
    return pb.CreateProductRequest(
        request_id=new_id(),
        community_id=world.community_id,
        kind=pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
        name="Supporter",
        description="Keeps the lights on.",
        price=pb.Money(currency="EUR", amount_minor=499),
        billing_period=pb.BILLING_PERIOD_MONTHLY,
        trial_days=14,
    )


def _checkout(world: World) -> pb.CreateCheckoutRequest:
    return pb.CreateCheckoutRequest(
        request_id=new_id(),
        community_id=world.community_id,
        product_ids=[world.product_id],
        payment_method="pm_card_visa",
    )


def _listing(kind: type[object]) -> object:
    return lambda w: kind(community_id=w.community_id)  # type: ignore[call-arg]


CATALOGUE: list[Rpc] = [
    Rpc(BILLING, "CreateProduct", _product, Role.ADMIN, True),
    Rpc(
        BILLING,
        "GetProduct",
        lambda w: pb.GetProductRequest(community_id=w.community_id, product_id=w.product_id),
        None,
        False,
    ),
    Rpc(
        BILLING,
        "ListProducts",
        lambda w: pb.ListProductsRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(
        BILLING,
        "UpdateProduct",
        lambda w: pb.UpdateProductRequest(
            request_id=new_id(),
            community_id=w.community_id,
            product_id=w.product_id,
            product=pb.Product(description="Keeps the lights on, and the coffee."),
            update_mask=FieldMask(paths=["description"]),
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(BILLING, "CreateCheckout", _checkout, Role.MEMBER, True),
    Rpc(
        BILLING,
        "ListCharges",
        lambda w: pb.ListChargesRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "ListInvoices",
        lambda w: pb.ListInvoicesRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "RefundCharge",
        lambda w: pb.RefundChargeRequest(
            request_id=new_id(),
            community_id=w.community_id,
            charge_id=w.charge_id,
            amount_minor=100,
            reason="a partial refund",
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        BILLING,
        "ListRefunds",
        lambda w: pb.ListRefundsRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "GrantEntitlement",
        lambda w: pb.GrantEntitlementRequest(
            request_id=new_id(),
            community_id=w.community_id,
            user_id=SCHOLAR,
            product_id=w.product_id,
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        BILLING,
        "ListEntitlements",
        lambda w: pb.ListEntitlementsRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "RevokeEntitlement",
        lambda w: pb.RevokeEntitlementRequest(
            request_id=new_id(), community_id=w.community_id, entitlement_id=w.entitlement_id
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        BILLING,
        "ListLedgerEntries",
        lambda w: pb.ListLedgerEntriesRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "GetBalances",
        lambda w: pb.GetBalancesRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "VerifyLedger",
        lambda w: pb.VerifyLedgerRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    # Subscriptions come before the product is archived and the data-rights calls erase the
    # owner's records.
    Rpc(
        BILLING,
        "CreateSubscription",
        lambda w: pb.CreateSubscriptionRequest(
            request_id=new_id(),
            community_id=w.community_id,
            product_id=w.product_id,
            payment_method="pm_card_visa",
        ),
        Role.MEMBER,
        True,
    ),
    Rpc(
        BILLING,
        "GetSubscription",
        lambda w: pb.GetSubscriptionRequest(
            community_id=w.community_id, subscription_id=w.subscription_id
        ),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "ListSubscriptions",
        lambda w: pb.ListSubscriptionsRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "ChangeSubscriptionPlan",
        lambda w: pb.ChangeSubscriptionPlanRequest(
            request_id=new_id(),
            community_id=w.community_id,
            subscription_id=w.subscription_id,
            product_id=w.plan_id,
        ),
        Role.MEMBER,
        True,
        authored=True,
    ),
    Rpc(
        BILLING,
        "ReactivateSubscription",
        lambda w: pb.ReactivateSubscriptionRequest(
            request_id=new_id(),
            community_id=w.community_id,
            subscription_id=w.canceled_subscription_id,
        ),
        Role.MEMBER,
        True,
        authored=True,
    ),
    Rpc(
        BILLING,
        "CancelSubscription",
        lambda w: pb.CancelSubscriptionRequest(
            request_id=new_id(), community_id=w.community_id, subscription_id=w.subscription_id
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        BILLING,
        "CreateCoupon",
        lambda w: pb.CreateCouponRequest(
            request_id=new_id(),
            community_id=w.community_id,
            code=f"C{uuid.uuid4().hex[:20]}",
            percent_off=15,
            duration=pb.COUPON_DURATION_ONCE,
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        BILLING,
        "ListCoupons",
        lambda w: pb.ListCouponsRequest(community_id=w.community_id),
        Role.ADMIN,
        False,
    ),
    Rpc(
        BILLING,
        "ArchiveProduct",
        lambda w: pb.ArchiveProductRequest(
            request_id=new_id(), community_id=w.community_id, product_id=w.product_id
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        BILLING,
        "GetMyBilling",
        lambda w: pb.GetMyBillingRequest(community_id=w.community_id),
        None,
        False,
        own_data=True,
    ),
    *data_rights_entries(BILLING),
]


def _plan(world: World, name: str) -> pb.CreateProductRequest:
    made = _product(world)
    made.name = name
    return made


async def _subscription(running: RunningService, world: World, name: str) -> str:
    """A trialing subscription of the owner's to a plan of its own."""
    owner = running.auth(OWNER)
    made = await CATALOGUE[0].call(running.channel, _plan(world, name), owner)
    assert isinstance(made, pb.CreateProductResponse)
    entry = next(rpc for rpc in CATALOGUE if rpc.method == "CreateSubscription")
    request = entry.request(replace(world, product_id=made.product.id))
    started = await entry.call(running.channel, request, owner)
    assert isinstance(started, pb.CreateSubscriptionResponse)
    return started.subscription.id


async def _paid_charge(running: RunningService, world: World) -> str:
    """A checkout of the owner's, confirmed as the provider's webhook confirms it."""
    bought = await CATALOGUE[4].call(running.channel, _checkout(world), running.auth(OWNER))
    assert isinstance(bought, pb.CreateCheckoutResponse)
    charge = bought.charge
    await Confirmations(running.deps.database, lambda: None).apply(
        ProviderEvent(
            id=f"evt_{uuid.uuid4().hex}",
            type="payment_intent.succeeded",
            object={
                "id": charge.provider_payment_id,
                "amount": charge.amount.amount_minor,
                "currency": charge.amount.currency.lower(),
                "metadata": {"charge_id": charge.id},
            },
        )
    )
    return charge.id


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A community the owner owns (as members' events leave it), selling one product, with
    (as asked) a charge of the owner's the provider confirmed, partly refunded, and a
    scholarship granted to a member."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    world = World(community_id=community_id, owner=OWNER)
    owner = running.auth(OWNER)
    made = await CATALOGUE[0].call(running.channel, _product(world), owner)
    assert isinstance(made, pb.CreateProductResponse)
    world = World(community_id=community_id, owner=OWNER, product_id=made.product.id)
    # A world for a call that names no record holds every kind (each listing has something
    # to list); one for a call naming a record holds what it names.
    named = needs or frozenset()
    everything = not named
    charge_id = entitlement_id = ""
    if everything or "charge_id" in named:
        charge_id = await _paid_charge(running, world)
    if everything:
        refund = CATALOGUE[7].request(replace(world, charge_id=charge_id))
        await CATALOGUE[7].call(running.channel, refund, owner)
    if everything or "entitlement_id" in named:
        granted = await CATALOGUE[9].call(running.channel, CATALOGUE[9].request(world), owner)
        assert isinstance(granted, pb.GrantEntitlementResponse)
        entitlement_id = granted.entitlement.id
    subscription_id = canceled_subscription_id = plan_id = ""
    if everything or "subscription_id" in named:
        subscription_id = await _subscription(running, world, "Patron")
    if everything:
        entry = next(rpc for rpc in CATALOGUE if rpc.method == "CreateCoupon")
        await entry.call(running.channel, entry.request(world), owner)
    if everything or "plan_id" in named:
        other = await CATALOGUE[0].call(running.channel, _plan(world, "Benefactor"), owner)
        assert isinstance(other, pb.CreateProductResponse)
        plan_id = other.product.id
    if everything or "canceled_subscription_id" in named:
        canceled_subscription_id = await _subscription(running, world, "Friend")
        cancel = next(rpc for rpc in CATALOGUE if rpc.method == "CancelSubscription")
        await cancel.call(
            running.channel,
            cancel.request(replace(world, subscription_id=canceled_subscription_id)),
            owner,
        )
    return World(
        community_id=community_id,
        owner=OWNER,
        product_id=made.product.id,
        charge_id=charge_id,
        entitlement_id=entitlement_id,
        subscription_id=subscription_id,
        canceled_subscription_id=canceled_subscription_id,
        plan_id=plan_id,
    )


class _Overrides(Mapping[str, Any]):
    """Billing's settings in the catalogue: the run's sandbox provider (started when a
    process is first started, not when this module is imported), webhooks on any port."""

    def __getitem__(self, name: str) -> Any:
        fixed = {"webhook_port": 0, "provider_api_key": API_KEY}
        return provider_url() if name == "provider_url" else fixed[name]

    def __iter__(self) -> Iterator[str]:
        return iter(("provider_url", "webhook_port", "provider_api_key"))

    def __len__(self) -> int:
        return 3


PROCESS = Process(
    name="billing",
    spec=SPEC,
    settings=BillingSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
    overrides=_Overrides(),
    exported=("charge_id", "subscription_id"),
)
