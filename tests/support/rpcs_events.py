"""The request catalogue of the events process: ActivitiesService (see
tests/support/catalogue.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from services.events.app import SPEC
from services.events.settings import EventsSettings
from services.events.store.tables import metadata
from services.kit.access import Role
from studyhall.events.v1 import activities_service_pb2 as pb
from tests.support.access import grant
from tests.support.catalogue import Process, Rpc, World, data_rights_entries, new_id
from tests.support.services import RunningService

ACTIVITIES = pb.DESCRIPTOR.services_by_name["ActivitiesService"]
OWNER = "olga"


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _activity(world: World) -> pb.CreateActivityRequest:
    return pb.CreateActivityRequest(
        request_id=new_id(),
        community_id=world.community_id,
        kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
        title="Reading papers efficiently",
        description="Bring a paper you struggled with.",
        start_time=_at(datetime(2031, 3, 14, 18, 30, tzinfo=UTC)),
        end_time=_at(datetime(2031, 3, 14, 20, 0, tzinfo=UTC)),
        capacity=30,
        location="Library, room 4",
    )


CATALOGUE: list[Rpc] = [
    Rpc(ACTIVITIES, "CreateActivity", _activity, Role.MODERATOR, True),
    Rpc(
        ACTIVITIES,
        "GetActivity",
        lambda w: pb.GetActivityRequest(community_id=w.community_id, activity_id=w.activity_id),
        None,
        False,
    ),
    *data_rights_entries(ACTIVITIES),
]


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A community the owner owns (as members' events leave it), holding one activity."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    world = World(community_id=community_id, owner=OWNER)
    made = await CATALOGUE[0].call(running.channel, _activity(world), running.auth(OWNER))
    assert isinstance(made, pb.CreateActivityResponse)
    return World(community_id=community_id, owner=OWNER, activity_id=made.activity.id)


PROCESS = Process(
    name="events",
    spec=SPEC,
    settings=EventsSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
    exported=("activity_id",),
)
