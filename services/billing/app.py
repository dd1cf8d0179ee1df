"""Wiring of the billing service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.billing.api import SERVICE_NAME, BillingApi
from services.billing.settings import BillingSettings
from services.billing.store.tables import access, inbox
from services.kit.access import Access, access_subscription
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.settings import load_settings
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    pb_grpc.add_BillingServiceServicer_to_server(
        BillingApi(deps.database, Access("billing", deps.database, access, deps.redis)), server
    )


SPEC = ServiceSpec(
    name="billing",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    inbox=inbox,
    subscriptions=lambda deps: [access_subscription("billing", access)],
)


def main() -> None:
    run(SPEC, load_settings(BillingSettings))
