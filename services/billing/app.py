"""Wiring of the billing service process: the capabilities composed into BillingService,
the provider adapter, and the webhook endpoint beside the gRPC server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc

from services.billing.catalog.api import CatalogApi
from services.billing.checkout import data as checkout_data
from services.billing.checkout.api import CheckoutApi
from services.billing.checkout.checkouts import Checkouts
from services.billing.checkout.confirm import Confirmations
from services.billing.entitlements import data as entitlements_data
from services.billing.entitlements.api import EntitlementsApi
from services.billing.ledger.api import LedgerApi
from services.billing.payments.provider import PaymentProvider, SandboxProvider
from services.billing.payments.stripe_provider import StripeProvider
from services.billing.payments.webhooks import WebhookServer
from services.billing.settings import BillingSettings
from services.billing.store.tables import (
    access,
    idempotency_keys,
    inbox,
    outbox,
    scheduled_jobs,
)
from services.billing.subscriptions import data as subscriptions_data
from services.billing.subscriptions.api import SubscriptionsApi
from services.billing.subscriptions.domain import COLLECT, RENEW, Timing
from services.billing.subscriptions.usecases import Subscriptions
from services.billing.tickets.consumers import TicketRefunds
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.grouped_writes import GroupedWriter
from services.kit.idempotency import IdempotentWriter
from services.kit.schedule import Handler, Jobs
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import ServiceSettings, load_settings
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["BillingService"]
SERVICE_NAME = SERVICE.full_name

# Everything billing holds about a member: ExportMyData, EraseMyData and MemberErased.
HOLDERS: tuple[DataHolder, ...] = (
    StandingData(access),
    checkout_data,
    entitlements_data,
    subscriptions_data,
)

ProviderFactory = Callable[[BillingSettings], PaymentProvider]


def sandbox_provider(settings: BillingSettings) -> PaymentProvider:
    """The adapter the settings name: the sandbox's HTTP API, or Stripe's client."""
    if settings.provider == "stripe":
        return StripeProvider(settings.provider_url, settings.provider_api_key)
    return SandboxProvider(settings.provider_url, settings.provider_api_key)


def _members_channel(deps: Dependencies) -> Callable[[], grpc.aio.Channel]:
    """The members service's API, connected on first use (a coupon limited to a segment):
    billing starts and serves without it."""
    channels: list[grpc.aio.Channel] = []

    def channel() -> grpc.aio.Channel:
        if not channels:
            channels.append(grpc.aio.insecure_channel(_settings(deps).members_address))
        return channels[0]

    return channel


def _settings(deps: Dependencies) -> BillingSettings:
    """Billing's own settings; tools that build a service from the shared settings alone
    (the AsyncAPI generator) get billing's defaults."""
    settings: ServiceSettings = deps.settings
    return settings if isinstance(settings, BillingSettings) else BillingSettings()


def build_spec(provider_factory: ProviderFactory = sandbox_provider) -> ServiceSpec:
    """The billing service with a payment provider adapter (the sandbox's HTTP API unless a
    benchmark hands in another)."""
    providers: dict[int, PaymentProvider] = {}
    recurring: dict[int, Subscriptions] = {}

    def provider_of(deps: Dependencies) -> PaymentProvider:
        return providers.setdefault(id(deps), provider_factory(_settings(deps)))

    def subscriptions_of(deps: Dependencies) -> Subscriptions:
        if id(deps) not in recurring:
            settings = _settings(deps)
            timing = Timing(
                day_seconds=settings.subscription_day_seconds,
                month_seconds=settings.subscription_month_seconds,
                retries=settings.dunning_retries,
                grace_seconds=settings.dunning_grace_seconds,
            )

            def wake() -> None:
                if deps.scheduler is not None:
                    deps.scheduler.wake()

            recurring[id(deps)] = Subscriptions(
                timing, Jobs(scheduled_jobs), provider_of(deps), wake
            )
        return recurring[id(deps)]

    def jobs(deps: Dependencies) -> dict[str, Handler]:
        subscriptions = subscriptions_of(deps)
        return {RENEW: subscriptions.renew, COLLECT: subscriptions.collect}

    def register(server: grpc.aio.Server, deps: Dependencies) -> None:
        database = deps.database
        checks = Access("billing", database, access, deps.redis)
        # Checkouts arrive in bursts of small transactions: those that arrive together commit
        # together (docs/decisions/0011).
        idempotent = IdempotentWriter(database, idempotency_keys, on_commit=deps.notify_outbox)
        writer = GroupedWriter(idempotent)
        servicer = compose(
            pb_grpc.BillingServiceServicer,
            SERVICE,
            CatalogApi(database, checks, writer),
            # Checkouts are decided a group at a time (services/billing/checkout/checkouts.py).
            CheckoutApi(
                database, checks, writer, Checkouts(database, checks, idempotent), provider_of(deps)
            ),
            EntitlementsApi(database, checks, writer),
            LedgerApi(database, checks),
            DataRightsApi(database, writer, HOLDERS, pb),
            SubscriptionsApi(
                database,
                checks,
                writer,
                subscriptions_of(deps),
                deps.notify_outbox,
                _members_channel(deps),
            ),
        )
        pb_grpc.add_BillingServiceServicer_to_server(servicer, server)

    def prepare(deps: Dependencies) -> None:
        settings = _settings(deps)
        endpoint = WebhookServer(
            host=settings.webhook_host,
            port=settings.webhook_port,
            secret=settings.webhook_secret,
            tolerance_seconds=settings.webhook_tolerance_seconds,
            apply=Confirmations(deps.database, deps.notify_outbox, subscriptions_of(deps)).apply,
            ready=deps.database.ping,
        )

        async def serve_webhooks() -> None:
            try:
                await endpoint.run()
            finally:
                await provider_of(deps).close()

        deps.background.append(serve_webhooks)

    return ServiceSpec(
        name="billing",
        migrations=Path(__file__).parent / "store" / "migrations",
        service_names=[SERVICE_NAME],
        register=register,
        outbox=outbox,
        inbox=inbox,
        subscriptions=lambda deps: [
            access_subscription("billing", access),
            erasure_subscription("billing", HOLDERS),
            # A ticket whose seat hold expired first is refunded (docs/decisions/0047).
            *TicketRefunds(deps.database, provider_of(deps)).subscriptions(),
        ],
        prepare=prepare,
        schedule=scheduled_jobs,
        jobs=jobs,
    )


SPEC = build_spec()


def main() -> None:
    run(SPEC, load_settings(BillingSettings))
