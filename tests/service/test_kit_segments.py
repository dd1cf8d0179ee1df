"""A segment's members, asked of the members service with the acting caller's own token:
the kit helper every service that aims at a segment uses."""

from __future__ import annotations

import json
import uuid

import pytest

from services.kit.auth import Identity
from services.kit.errors import NotFound, PermissionDenied
from services.kit.segments import segment_members
from studyhall.members.v1 import profiles_service_pb2 as ppb
from studyhall.members.v1 import profiles_service_pb2_grpc as ppb_grpc
from tests.support.members import Hall
from tests.support.services import RunningService

pytestmark = pytest.mark.service


def _caller(members: RunningService, user: str) -> Identity:
    token = members.auth(user)[0][1].removeprefix("Bearer ")
    return Identity(user_id=user, token=token)


async def test_a_segment_is_snapshot_page_by_page_with_the_callers_rights(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    newcomers = [f"m{index:03d}" for index in range(230)]
    for user in newcomers:
        await hall.join(user)
    segment = await ppb_grpc.ProfilesServiceStub(members.channel).CreateSegment(
        ppb.CreateSegmentRequest(
            community_id=hall.id,
            name="no level yet",
            rule=json.dumps({"attribute": "level", "op": "exists", "value": False}),
        ),
        metadata=hall.auth("olga"),
    )
    segment_id = segment.segment.id

    found = await segment_members(members.channel, _caller(members, "olga"), hall.id, segment_id)
    assert sorted(found) == sorted([*newcomers, "olga"])

    # A plain member may not list a segment, so may not have a service list it for them.
    with pytest.raises(PermissionDenied):
        await segment_members(members.channel, _caller(members, "m001"), hall.id, segment_id)
    with pytest.raises(NotFound):
        await segment_members(members.channel, _caller(members, "olga"), hall.id, str(uuid.uuid4()))
