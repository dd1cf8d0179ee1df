"""The resource library: moderators curate books, courses, tools, articles and videos with a
level, tags and a review; members rate them 1 to 5 and save them; anyone who may read the
community browses by level, tag and rating; bad input refused naming the field with nothing
written."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select

from services.content.store.tables import metadata, outbox
from services.kit.access import Role
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.catalogue import changed_tables, snapshot
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service

LEARNERS = ("ada", "ben", "cy")


class Library:
    def __init__(self, content: RunningService, community_id: str) -> None:
        self.content = content
        self.id = community_id
        self.stub = pb_grpc.ContentServiceStub(content.channel)

    @classmethod
    async def create(cls, content: RunningService) -> Library:
        library = cls(content, str(uuid.uuid4()))
        await grant(content, library.id, "mo", Role.MODERATOR)
        for user in LEARNERS:
            await grant(content, library.id, user, Role.MEMBER)
        return library

    async def add(self, title: str, by: str = "mo", **fields: Any) -> pb.Resource:
        values: dict[str, Any] = {
            "url": f"https://example.org/{uuid.uuid4().hex[:8]}",
            "type": pb.RESOURCE_TYPE_BOOK,
            "level": pb.RESOURCE_LEVEL_BEGINNER,
            **fields,
        }
        reply = await self.stub.AddResource(
            pb.AddResourceRequest(
                community_id=self.id, resource=pb.Resource(title=title, **values)
            ),
            metadata=self.content.auth(by),
        )
        resource: pb.Resource = reply.resource
        return resource

    async def rate(self, user: str, resource_id: str, stars: int) -> pb.Resource:
        reply = await self.stub.RateResource(
            pb.RateResourceRequest(community_id=self.id, resource_id=resource_id, stars=stars),
            metadata=self.content.auth(user),
        )
        resource: pb.Resource = reply.resource
        return resource

    async def titles(self, user: str = "ada", **asked: Any) -> list[str]:
        reply = await self.stub.ListResources(
            pb.ListResourcesRequest(community_id=self.id, **asked),
            metadata=self.content.auth(user),
        )
        return [resource.title for resource in reply.resources]

    async def events(self) -> list[str]:
        async with self.content.deps.database.read() as session:
            rows = await session.execute(
                select(outbox.c.event_type)
                .where(outbox.c.community_id == self.id)
                .order_by(outbox.c.seq)
            )
            return [str(row.event_type).rsplit(".", 1)[-1] for row in rows]


async def test_members_rate_and_save_and_browse_by_level_tag_and_rating(
    content: RunningService,
) -> None:
    library = await Library.create(content)
    grammar = await library.add(
        "Grammar in Use", tags=["Grammar", "reference"], review="The one book to keep."
    )
    course = await library.add(
        "Pronunciation course",
        type=pb.RESOURCE_TYPE_COURSE,
        level=pb.RESOURCE_LEVEL_ADVANCED,
        tags=["speaking"],
    )
    await library.add("Flashcards", type=pb.RESOURCE_TYPE_TOOL, tags=["vocabulary"])
    assert list(grammar.tags) == ["grammar", "reference"]

    # Ratings of one resource arriving together all count.
    await asyncio.gather(*(library.rate(user, grammar.id, 4) for user in LEARNERS))
    rated = await library.rate("ada", grammar.id, 1)  # ada changes her mind
    assert (rated.rating_count, rated.rating_average, rated.my_rating) == (3, 3.0, 1)
    await library.rate("ben", course.id, 5)

    assert await library.titles() == ["Flashcards", "Pronunciation course", "Grammar in Use"]
    assert await library.titles(order=pb.RESOURCE_ORDER_TOP_RATED) == [
        "Pronunciation course",
        "Grammar in Use",
        "Flashcards",
    ]
    assert await library.titles(level=pb.RESOURCE_LEVEL_BEGINNER) == [
        "Flashcards",
        "Grammar in Use",
    ]
    assert await library.titles(tag="GRAMMAR") == ["Grammar in Use"]
    assert await library.titles(min_rating=4) == ["Pronunciation course"]

    # Top rated, page by page.
    first = await library.stub.ListResources(
        pb.ListResourcesRequest(
            community_id=library.id, order=pb.RESOURCE_ORDER_TOP_RATED, page_size=2
        ),
        metadata=content.auth("ada"),
    )
    rest = await library.stub.ListResources(
        pb.ListResourcesRequest(
            community_id=library.id,
            order=pb.RESOURCE_ORDER_TOP_RATED,
            page_size=2,
            page_token=first.next_page_token,
        ),
        metadata=content.auth("ada"),
    )
    assert [r.title for r in [*first.resources, *rest.resources]] == [
        "Pronunciation course",
        "Grammar in Use",
        "Flashcards",
    ]
    assert rest.next_page_token == ""

    saved = await library.stub.SaveResource(
        pb.SaveResourceRequest(community_id=library.id, resource_id=course.id),
        metadata=content.auth("cy"),
    )
    assert saved.resource.saved
    await library.stub.SaveResource(
        pb.SaveResourceRequest(community_id=library.id, resource_id=course.id),
        metadata=content.auth("cy"),
    )
    assert await library.titles("cy", saved_only=True) == ["Pronunciation course"]
    assert await library.titles("ada", saved_only=True) == []
    await library.stub.UnsaveResource(
        pb.UnsaveResourceRequest(community_id=library.id, resource_id=course.id),
        metadata=content.auth("cy"),
    )
    assert await library.titles("cy", saved_only=True) == []
    events = await library.events()
    assert events.count("ResourceRated") == 5
    assert (events.count("ResourceSaved"), events.count("ResourceUnsaved")) == (1, 1)


async def test_a_moderator_changes_a_resource_by_mask_and_etag(content: RunningService) -> None:
    library = await Library.create(content)
    resource = await library.add("Grammar in Use", tags=["grammar"])
    await library.rate("ada", resource.id, 5)

    def change(etag: str, **fields: Any) -> Any:
        return library.stub.UpdateResource(
            pb.UpdateResourceRequest(
                community_id=library.id,
                resource_id=resource.id,
                resource=pb.Resource(**fields),
                update_mask=FieldMask(paths=list(fields)),
                etag=etag,
            ),
            metadata=content.auth("mo"),
        )

    # A rating does not move the etag an edit stands on.
    changed = await change(resource.etag, level=pb.RESOURCE_LEVEL_INTERMEDIATE, tags=["b1"])
    assert changed.resource.level == pb.RESOURCE_LEVEL_INTERMEDIATE
    assert changed.resource.title == "Grammar in Use"
    assert changed.resource.rating_count == 1
    assert await library.titles(tag="grammar") == []
    assert await library.titles(tag="b1") == ["Grammar in Use"]
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await change(resource.etag, review="Lost update")
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    content: RunningService,
) -> None:
    library = await Library.create(content)
    resource = await library.add("Grammar in Use")
    before = await snapshot(content, metadata)

    with pytest.raises(grpc.aio.AioRpcError) as stars:
        await library.rate("ada", resource.id, 6)
    assert stars.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stars" in field_violations(stars.value)
    with pytest.raises(grpc.aio.AioRpcError) as none:
        await library.rate("ada", resource.id, 0)
    assert "stars" in field_violations(none.value)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await library.stub.AddResource(
            pb.AddResourceRequest(
                community_id=library.id,
                resource=pb.Resource(
                    title="",
                    url="ftp://example.org/book",
                    level=pb.RESOURCE_LEVEL_BEGINNER,
                    tags=["no spaces please"],
                ),
            ),
            metadata=content.auth("mo"),
        )
    assert set(field_violations(bad.value)) == {
        "resource.title",
        "resource.url",
        "resource.type",
        "resource.tags[0]",
    }
    with pytest.raises(grpc.aio.AioRpcError) as browse:
        await library.titles(min_rating=6)
    assert "min_rating" in field_violations(browse.value)
    with pytest.raises(grpc.aio.AioRpcError) as member:
        await library.add("Mine", by="ada")
    assert member.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
        await library.rate("ada", str(uuid.uuid4()), 3)
    assert elsewhere.value.code() == grpc.StatusCode.NOT_FOUND
    assert changed_tables(before, await snapshot(content, metadata)) == []


async def test_a_members_ratings_saves_and_progress_are_exported_and_erased(
    content: RunningService,
) -> None:
    library = await Library.create(content)
    resource = await library.add("Grammar in Use")
    await library.rate("ada", resource.id, 5)
    await library.rate("ben", resource.id, 3)
    await library.stub.SaveResource(
        pb.SaveResourceRequest(community_id=library.id, resource_id=resource.id),
        metadata=content.auth("ada"),
    )
    await grant(content, library.id, "olga", Role.ADMIN)
    path = await library.stub.CreatePath(
        pb.CreatePathRequest(
            community_id=library.id,
            path=pb.LearningPath(
                title="Grammar first",
                steps=[pb.PathStep(kind=pb.PATH_STEP_KIND_RESOURCE, resource_id=resource.id)],
            ),
        ),
        metadata=content.auth("olga"),
    )
    await library.stub.CompletePathStep(
        pb.CompletePathStepRequest(
            community_id=library.id, path_id=path.path.id, step_id=path.path.steps[0].id
        ),
        metadata=content.auth("ada"),
    )

    exported = await library.stub.ExportMyData(
        pb.ExportMyDataRequest(community_id=library.id), metadata=content.auth("ada")
    )
    document = json.loads(exported.document)
    assert [r["stars"] for r in document["resource_ratings"]] == [5]
    assert [s["resource_id"] for s in document["saved_resources"]] == [resource.id]
    assert [e["path_id"] for e in document["path_enrollments"]] == [path.path.id]

    await library.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=library.id, confirm=True),
        metadata=content.auth("ada"),
    )
    after = await library.stub.GetResource(
        pb.GetResourceRequest(community_id=library.id, resource_id=resource.id),
        metadata=content.auth("ben"),
    )
    assert (after.resource.rating_count, after.resource.rating_average) == (1, 3.0)
    erased = await library.stub.ExportMyData(
        pb.ExportMyDataRequest(community_id=library.id), metadata=content.auth("ada")
    )
    document = json.loads(erased.document)
    assert document["resource_ratings"] == []
    assert document["saved_resources"] == []
    assert document["path_enrollments"] == []
