"""The request catalogue of the content process: ContentService (see
tests/support/catalogue.py)."""

from __future__ import annotations

import uuid

from services.content.app import SPEC
from services.content.settings import ContentSettings
from services.content.store.tables import metadata
from services.kit.access import Role
from studyhall.content.v1 import content_service_pb2 as pb
from tests.support.access import grant
from tests.support.catalogue import Process, Rpc, World, data_rights_entries, new_id
from tests.support.services import RunningService

CONTENT = pb.DESCRIPTOR.services_by_name["ContentService"]
OWNER = "olga"


def _post(world: World) -> pb.CreatePostRequest:
    return pb.CreatePostRequest(
        request_id=new_id(),
        community_id=world.community_id,
        kind=pb.POST_KIND_LINK,
        title="Spaced repetition, week one",
        body="What worked: reviewing at 1, 3 and 7 days.",
        url="https://example.org/spaced-repetition",
        tags=["memory", "method"],
    )


CATALOGUE: list[Rpc] = [
    Rpc(CONTENT, "CreatePost", _post, Role.MEMBER, True),
    Rpc(
        CONTENT,
        "GetPost",
        lambda w: pb.GetPostRequest(community_id=w.community_id, post_id=w.post_id),
        None,
        False,
    ),
    *data_rights_entries(CONTENT),
]


async def prepare(running: RunningService) -> World:
    """A community the owner owns (as members' events leave it), holding one post."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    world = World(community_id=community_id, owner=OWNER)
    made = await CATALOGUE[0].call(running.channel, _post(world), running.auth(OWNER))
    assert isinstance(made, pb.CreatePostResponse)
    return World(community_id=community_id, owner=OWNER, post_id=made.post.id)


PROCESS = Process(
    name="content",
    spec=SPEC,
    settings=ContentSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
    exported=("post_id",),
)
