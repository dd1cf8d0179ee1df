"""The request catalogue of the billing process: BillingService (see
tests/support/catalogue.py)."""

from __future__ import annotations

import uuid

from services.billing.app import SPEC
from services.billing.settings import BillingSettings
from services.billing.store.tables import metadata
from services.kit.access import Role
from studyhall.billing.v1 import billing_service_pb2 as pb
from tests.support.access import grant
from tests.support.catalogue import Process, Rpc, World, data_rights_entries, new_id
from tests.support.services import RunningService

BILLING = pb.DESCRIPTOR.services_by_name["BillingService"]
OWNER = "olga"


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


CATALOGUE: list[Rpc] = [
    Rpc(BILLING, "CreateProduct", _product, Role.ADMIN, True),
    Rpc(
        BILLING,
        "GetProduct",
        lambda w: pb.GetProductRequest(community_id=w.community_id, product_id=w.product_id),
        None,
        False,
    ),
    *data_rights_entries(BILLING),
]


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A community the owner owns (as members' events leave it), selling one product."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    world = World(community_id=community_id, owner=OWNER)
    made = await CATALOGUE[0].call(running.channel, _product(world), running.auth(OWNER))
    assert isinstance(made, pb.CreateProductResponse)
    return World(community_id=community_id, owner=OWNER, product_id=made.product.id)


PROCESS = Process(
    name="billing",
    spec=SPEC,
    settings=BillingSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
)
