"""The Stripe adapter (services/billing/payments/stripe_provider.py) through the official
`stripe` package, against a stand-in for Stripe's API in its own process answering with
objects built from the package's models (tests/support/stripe_api.py); and billing's webhook
signatures checked by `stripe.Webhook.construct_event` as an independent verifier. Not
verified against live Stripe: there is no network here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from services.billing.app import SPEC
from services.billing.payments.provider import ProviderRefused
from services.billing.payments.signatures import BadSignature, sign, verify
from services.billing.payments.stripe_provider import StripeProvider
from services.billing.settings import BillingSettings
from services.kit.access import Role
from services.kit.errors import Unavailable
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.billing import SECRET, deliver, signed
from tests.support.services import RunningService, free_port, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk_test_stand_in"


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[str]:
    """The stand-in's URL, for the module."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.stripe_api"],
        env={**os.environ, "STRIPE_API_PORT": str(port)},
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def sent(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_requests", timeout=5) as response:
        found: list[dict[str, Any]] = json.load(response)
    return found


def fail_next(url: str, count: int) -> None:
    request = urllib.request.Request(f"{url}/_fail?count={count}", method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


@pytest.fixture
async def provider(stripe_api: str) -> AsyncIterator[StripeProvider]:
    adapter = StripeProvider(stripe_api, KEY)
    yield adapter
    await adapter.close()


async def test_a_payment_is_one_payment_intent_whatever_the_retries(
    provider: StripeProvider, stripe_api: str
) -> None:
    key = str(uuid.uuid4())
    metadata = {"charge_id": key, "community_id": "c1"}
    first = await provider.create_payment(
        idempotency_key=key,
        amount_minor=4999,
        currency="EUR",
        payment_method="pm_card_visa",
        metadata=metadata,
    )
    again = await provider.create_payment(
        idempotency_key=key,
        amount_minor=4999,
        currency="EUR",
        payment_method="pm_card_visa",
        metadata=metadata,
    )
    assert first.id.startswith("pi_")
    assert again == first
    mine = [r for r in sent(stripe_api) if r["idempotency_key"] == key]
    assert len(mine) == 2
    assert mine[0]["authorization"] == f"Bearer {KEY}"
    assert mine[0]["form"] == {
        "amount": "4999",
        "currency": "eur",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "metadata[charge_id]": key,
        "metadata[community_id]": "c1",
    }


async def test_declines_authentication_refusals_and_outages_map_onto_the_port(
    provider: StripeProvider, stripe_api: str
) -> None:
    async def pay(method: str, key: str = "") -> Any:
        return await provider.create_payment(
            idempotency_key=key or str(uuid.uuid4()),
            amount_minor=500,
            currency="usd",
            payment_method=method,
            metadata={},
        )

    # A decline is a payment whose failure the webhook reports.
    declined = await pay("pm_card_chargeDeclined")
    assert declined.id.startswith("pi_")
    assert declined.status == "requires_payment_method"
    waiting = await pay("pm_card_authenticationRequired")
    assert waiting.status == "requires_action"
    assert waiting.next_action_url == "https://hooks/3ds"
    with pytest.raises(ProviderRefused, match="No such PaymentMethod"):
        await pay("pm_nonsense")

    key = str(uuid.uuid4())
    fail_next(stripe_api, 1)
    with pytest.raises(Unavailable, match="retry with the same request_id"):
        await pay("pm_card_visa", key)
    assert (await pay("pm_card_visa", key)).status == "processing"

    refund = await provider.create_refund(
        idempotency_key=str(uuid.uuid4()), payment_id=declined.id, amount_minor=100, metadata={}
    )
    assert refund.id.startswith("re_")
    assert refund.status == "pending"


def test_billing_signatures_and_stripes_verifier_agree() -> None:
    payload = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"})
    now = int(time.time())
    ours = sign(payload.encode(), SECRET, now)
    event = stripe.Webhook.construct_event(payload, ours, SECRET)
    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.replace("evt_1", "evt_2"), ours, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, sign(payload.encode(), SECRET, now - 600), SECRET)

    theirs = stripe.WebhookSignature.generate_signature_header(payload, SECRET, now)
    assert verify(payload.encode(), theirs, SECRET, time.time(), 300) == now
    with pytest.raises(BadSignature):
        verify(payload.encode(), theirs, "whsec_another", time.time(), 300)


async def test_billing_on_the_stripe_adapter_takes_a_subscription_its_webhook_activates(
    stripe_api: str,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = tmp_path_factory.mktemp("billing-stripe")
    port = free_port()
    running: RunningService
    async with running_service(
        SPEC,
        BillingSettings,
        database_url=f"sqlite+aiosqlite:///{directory / 'billing.db'}",
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=directory,
        relay="external",
        provider="stripe",
        provider_url=stripe_api,
        provider_api_key=KEY,
        webhook_secret=SECRET,
        webhook_port=port,
    ) as running:
        community_id = str(uuid.uuid4())
        await grant(running, community_id, "olga", Role.OWNER)
        await grant(running, community_id, "mia", Role.MEMBER)
        stub = pb_grpc.BillingServiceStub(running.channel)
        made = await stub.CreateProduct(
            pb.CreateProductRequest(
                community_id=community_id,
                kind=pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
                name="Supporter",
                price=pb.Money(currency="EUR", amount_minor=900),
                billing_period=pb.BILLING_PERIOD_MONTHLY,
            ),
            metadata=running.auth("olga"),
        )
        started = await stub.CreateSubscription(
            pb.CreateSubscriptionRequest(
                community_id=community_id,
                product_id=made.product.id,
                payment_method="pm_card_visa",
            ),
            metadata=running.auth("mia"),
        )
        charge = started.charge
        assert charge.provider_payment_id.startswith("pi_")
        assert any(r["idempotency_key"] == charge.id for r in sent(stripe_api))

        payload, signature = signed(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "type": "payment_intent.succeeded",
                "data": {
                    "object": {
                        "id": charge.provider_payment_id,
                        "amount": 900,
                        "currency": "eur",
                        "metadata": {"charge_id": charge.id},
                    }
                },
            }
        )
        status, _ = await deliver(f"http://127.0.0.1:{port}/webhooks/provider", payload, signature)
        assert status == 200

        async def active() -> bool:
            found = await stub.GetSubscription(
                pb.GetSubscriptionRequest(
                    community_id=community_id, subscription_id=started.subscription.id
                ),
                metadata=running.auth("mia"),
            )
            return bool(found.subscription.state == 2)  # SUBSCRIPTION_STATE_ACTIVE

        await eventually(active, "the subscription active after Stripe's webhook")
