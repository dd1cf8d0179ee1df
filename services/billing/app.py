"""Wiring of the billing service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.billing.api import SERVICE_NAME, BillingApi
from services.billing.settings import BillingSettings
from services.billing.store.tables import access, idempotency_keys, inbox
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.idempotency import IdempotentWriter
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import load_settings
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc

# Everything billing holds about a member: ExportMyData, EraseMyData and MemberErased.
# Products name no member; orders, the ledger and entitlements add their holders here.
HOLDERS: tuple[DataHolder, ...] = (StandingData(access),)


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    servicer = compose(
        pb_grpc.BillingServiceServicer,
        pb.DESCRIPTOR.services_by_name["BillingService"],
        BillingApi(deps.database, Access("billing", deps.database, access, deps.redis)),
        DataRightsApi(
            deps.database, IdempotentWriter(deps.database, idempotency_keys), HOLDERS, pb
        ),
    )
    pb_grpc.add_BillingServiceServicer_to_server(servicer, server)


SPEC = ServiceSpec(
    name="billing",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    inbox=inbox,
    subscriptions=lambda deps: [
        access_subscription("billing", access),
        erasure_subscription("billing", HOLDERS),
    ],
)


def main() -> None:
    run(SPEC, load_settings(BillingSettings))
