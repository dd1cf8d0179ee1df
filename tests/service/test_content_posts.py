"""Posts and topics through the gRPC API, on SQLite and PostgreSQL: drafts and publishing,
edits with revisions and etags, deletion and restoring, pins, the feeds (newest, top, per
topic, paged) and the facts each change stages in the outbox."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select

from services.content.store.tables import metadata, outbox
from services.kit.access import Role
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.catalogue import changed_tables, snapshot
from tests.support.services import RunningService

pytestmark = pytest.mark.service


class Community:
    """A new community in the content service, with an admin, a moderator and members."""

    def __init__(self, running: RunningService) -> None:
        self.running = running
        self.id = str(uuid.uuid4())
        self.stub = pb_grpc.ContentServiceStub(running.channel)

    async def setup(self) -> Community:
        for user, role in [
            ("ada", Role.ADMIN),
            ("mo", Role.MODERATOR),
            ("bo", Role.MEMBER),
            ("cy", Role.MEMBER),
        ]:
            await grant(self.running, self.id, user, role)
        return self

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.running.auth(user)

    async def post(self, user: str = "bo", **fields: Any) -> pb.Post:
        values: dict[str, Any] = {
            "kind": pb.POST_KIND_ARTICLE,
            "title": "Reading log",
            "body": "Chapter 4.",
        }
        values.update(fields)
        reply = await self.stub.CreatePost(
            pb.CreatePostRequest(community_id=self.id, **values), metadata=self.auth(user)
        )
        post: pb.Post = reply.post
        return post

    async def events(self) -> list[str]:
        async with self.running.deps.database.read() as session:
            rows = await session.execute(
                select(outbox.c.event_type)
                .where(outbox.c.community_id == self.id)
                .order_by(outbox.c.seq)
            )
            return [str(row.event_type).rsplit(".", 1)[-1] for row in rows]


async def refused(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""


async def test_topics_are_made_by_admins_with_unique_names(content: RunningService) -> None:
    here = await Community(content).setup()
    made = await here.stub.CreateTopic(
        pb.CreateTopicRequest(community_id=here.id, name="Grammar", description="Tenses"),
        metadata=here.auth("ada"),
    )
    details = await refused(
        here.stub.CreateTopic(
            pb.CreateTopicRequest(community_id=here.id, name=" grammar "),
            metadata=here.auth("ada"),
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert "Grammar" in details or "grammar" in details
    await refused(
        here.stub.CreateTopic(
            pb.CreateTopicRequest(community_id=here.id, name="Vocabulary"),
            metadata=here.auth("mo"),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    renamed = await here.stub.UpdateTopic(
        pb.UpdateTopicRequest(
            community_id=here.id,
            topic_id=made.topic.id,
            topic=pb.Topic(name="Grammar and usage"),
            update_mask=FieldMask(paths=["name"]),
            etag=made.topic.etag,
        ),
        metadata=here.auth("ada"),
    )
    assert renamed.topic.name == "Grammar and usage"
    await refused(
        here.stub.UpdateTopic(
            pb.UpdateTopicRequest(
                community_id=here.id,
                topic_id=made.topic.id,
                topic=pb.Topic(description="stale"),
                update_mask=FieldMask(paths=["description"]),
                etag=made.topic.etag,
            ),
            metadata=here.auth("ada"),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    listed = await here.stub.ListTopics(
        pb.ListTopicsRequest(community_id=here.id), metadata=here.auth("bo")
    )
    assert [topic.name for topic in listed.topics] == ["Grammar and usage"]
    assert await here.events() == ["TopicCreated", "TopicUpdated"]


async def test_a_draft_is_its_authors_until_published(content: RunningService) -> None:
    here = await Community(content).setup()
    draft = await here.post(draft=True, title="Week plan")
    assert draft.state == pb.POST_STATE_DRAFT
    assert not draft.HasField("publish_time")
    await refused(
        here.stub.GetPost(
            pb.GetPostRequest(community_id=here.id, post_id=draft.id), metadata=here.auth("mo")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    feed = await here.stub.ListPosts(
        pb.ListPostsRequest(community_id=here.id), metadata=here.auth("bo")
    )
    assert feed.posts == []
    drafts = await here.stub.ListPosts(
        pb.ListPostsRequest(community_id=here.id, drafts=True), metadata=here.auth("bo")
    )
    assert [post.id for post in drafts.posts] == [draft.id]
    await refused(
        here.stub.PublishPost(
            pb.PublishPostRequest(community_id=here.id, post_id=draft.id),
            metadata=here.auth("cy"),
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert await here.events() == []

    published = await here.stub.PublishPost(
        pb.PublishPostRequest(community_id=here.id, post_id=draft.id), metadata=here.auth("bo")
    )
    assert published.post.state == pb.POST_STATE_PUBLISHED
    assert published.post.HasField("publish_time")
    await refused(
        here.stub.PublishPost(
            pb.PublishPostRequest(community_id=here.id, post_id=draft.id),
            metadata=here.auth("bo"),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert await here.events() == ["PostCreated"]


async def test_edits_keep_revisions_and_refuse_a_stale_etag(content: RunningService) -> None:
    here = await Community(content).setup()
    post = await here.post(title="Plan", tags=["plan"])

    edited = await here.stub.UpdatePost(
        pb.UpdatePostRequest(
            community_id=here.id,
            post_id=post.id,
            post=pb.Post(title="Week plan", tags=["week", "plan"], body="Mon: verbs"),
            update_mask=FieldMask(paths=["title", "tags", "body"]),
            etag=post.etag,
        ),
        metadata=here.auth("bo"),
    )
    assert edited.post.title == "Week plan"
    assert list(edited.post.tags) == ["plan", "week"]
    assert edited.post.version == post.version + 1
    await refused(
        here.stub.UpdatePost(
            pb.UpdatePostRequest(
                community_id=here.id,
                post_id=post.id,
                post=pb.Post(title="Other"),
                update_mask=FieldMask(paths=["title"]),
                etag=post.etag,
            ),
            metadata=here.auth("bo"),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    details = await refused(
        here.stub.UpdatePost(
            pb.UpdatePostRequest(
                community_id=here.id,
                post_id=post.id,
                post=pb.Post(title="Mine now"),
                update_mask=FieldMask(paths=["title"]),
            ),
            metadata=here.auth("mo"),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "only its author" in details

    revisions = await here.stub.ListPostRevisions(
        pb.ListPostRevisionsRequest(community_id=here.id, post_id=post.id),
        metadata=here.auth("mo"),
    )
    [revision] = revisions.revisions
    assert revision.number == 1
    assert revision.editor_user_id == "bo"
    assert list(revision.changed_fields) == ["body", "tags", "title"]
    assert revision.previous.title == "Plan"
    assert revision.previous.body == "Chapter 4."
    assert list(revision.previous.tags) == ["plan"]
    await refused(
        here.stub.ListPostRevisions(
            pb.ListPostRevisionsRequest(community_id=here.id, post_id=post.id),
            metadata=here.auth("cy"),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert await here.events() == ["PostCreated", "PostUpdated"]


async def test_concurrent_edits_with_one_etag_change_the_post_once(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.post()

    async def edit(n: int) -> grpc.StatusCode:
        try:
            await here.stub.UpdatePost(
                pb.UpdatePostRequest(
                    community_id=here.id,
                    post_id=post.id,
                    post=pb.Post(title=f"Edit {n}"),
                    update_mask=FieldMask(paths=["title"]),
                    etag=post.etag,
                ),
                metadata=here.auth("bo"),
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    codes = await asyncio.gather(*(edit(n) for n in range(20)))
    assert codes.count(grpc.StatusCode.OK) == 1
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION}
    revisions = await here.stub.ListPostRevisions(
        pb.ListPostRevisionsRequest(community_id=here.id, post_id=post.id),
        metadata=here.auth("bo"),
    )
    assert len(revisions.revisions) == 1


async def test_deleted_posts_leave_the_feed_and_moderators_restore_them(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.post()
    await refused(
        here.stub.DeletePost(
            pb.DeletePostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("cy")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    deleted = await here.stub.DeletePost(
        pb.DeletePostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("bo")
    )
    assert deleted.post.state == pb.POST_STATE_DELETED
    await refused(
        here.stub.GetPost(
            pb.GetPostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("cy")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    seen = await here.stub.GetPost(
        pb.GetPostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("mo")
    )
    assert seen.post.HasField("delete_time")
    feed = await here.stub.ListPosts(
        pb.ListPostsRequest(community_id=here.id), metadata=here.auth("cy")
    )
    assert feed.posts == []
    await refused(
        here.stub.RestorePost(
            pb.RestorePostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("bo")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    restored = await here.stub.RestorePost(
        pb.RestorePostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("mo")
    )
    assert restored.post.state == pb.POST_STATE_PUBLISHED
    assert await here.events() == ["PostCreated", "PostDeleted", "PostRestored"]


async def test_feeds_pin_page_and_rank(content: RunningService) -> None:
    here = await Community(content).setup()
    topic = (
        await here.stub.CreateTopic(
            pb.CreateTopicRequest(community_id=here.id, name="Listening"),
            metadata=here.auth("ada"),
        )
    ).topic
    posts = [await here.post(title=f"Post {n}") for n in range(5)]
    in_topic = await here.post(title="Podcast", topic_id=topic.id)
    await here.stub.PinPost(
        pb.PinPostRequest(community_id=here.id, post_id=posts[0].id), metadata=here.auth("mo")
    )

    seen: list[str] = []
    token = ""
    first = True
    while True:
        page = await here.stub.ListPosts(
            pb.ListPostsRequest(community_id=here.id, page_size=2, page_token=token),
            metadata=here.auth("cy"),
        )
        if first:
            assert [post.id for post in page.pinned] == [posts[0].id]
            assert page.pinned[0].pinned
            first = False
        else:
            assert page.pinned == []
        seen += [post.id for post in page.posts]
        token = page.next_page_token
        if not token:
            break
    assert seen == [in_topic.id, *[post.id for post in reversed(posts[1:])]]

    topical = await here.stub.ListPosts(
        pb.ListPostsRequest(community_id=here.id, topic_id=topic.id), metadata=here.auth("cy")
    )
    assert [post.id for post in topical.posts] == [in_topic.id]

    # Two reactions to an older post outrank a newer one with none.
    for user in ("cy", "mo"):
        await here.stub.React(
            pb.ReactRequest(community_id=here.id, post_id=posts[1].id, kind=pb.REACTION_KIND_LIKE),
            metadata=here.auth(user),
        )
    top = await here.stub.ListPosts(
        pb.ListPostsRequest(community_id=here.id, order=pb.FEED_ORDER_TOP, page_size=3),
        metadata=here.auth("cy"),
    )
    assert top.posts[0].id == posts[1].id
    assert top.posts[0].reactions[0].count == 2
    rest = await here.stub.ListPosts(
        pb.ListPostsRequest(
            community_id=here.id,
            order=pb.FEED_ORDER_TOP,
            page_size=10,
            page_token=top.next_page_token,
        ),
        metadata=here.auth("cy"),
    )
    ranked = [post.id for post in [*top.posts, *rest.posts]]
    assert sorted(ranked) == sorted([post.id for post in [*posts, in_topic]])
    assert len(set(ranked)) == len(ranked)

    # A token of one feed is refused by another.
    await refused(
        here.stub.ListPosts(
            pb.ListPostsRequest(community_id=here.id, page_token=top.next_page_token),
            metadata=here.auth("cy"),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"body": "x" * 50_001}, "body"),
        ({"kind": pb.POST_KIND_LINK, "url": "ftp://example.org/a"}, "url"),
        ({"kind": pb.POST_KIND_VIDEO, "url": ""}, "url"),
        ({"topic_id": str(uuid.uuid4())}, "topic_id"),
        ({"summary": "s" * 501}, "summary"),
        (
            {
                "media": [
                    pb.Media(
                        url="https://example.org/a.mp3",
                        media_type="audio/mpeg",
                        duration=Duration(seconds=-3),
                    )
                ]
            },
            "media[0].duration",
        ),
        (
            {"media": [pb.Media(url="https://example.org/a", media_type="audio")]},
            "media[0].media_type",
        ),
        ({"kind": 99}, "kind"),
    ],
)
async def test_bad_posts_are_refused_naming_the_field_and_change_nothing(
    content: RunningService, fields: dict[str, Any], field: str
) -> None:
    here = await Community(content).setup()
    before = await snapshot(content, metadata)
    details = await refused(
        here.post(**fields),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in details
    assert changed_tables(before, await snapshot(content, metadata)) == []


async def test_media_keep_their_type_and_duration(content: RunningService) -> None:
    here = await Community(content).setup()
    duration = Duration()
    duration.FromTimedelta(timedelta(minutes=42, seconds=5))
    post = await here.post(
        kind=pb.POST_KIND_AUDIO,
        url="https://example.org/episode-12",
        media=[
            pb.Media(url="https://example.org/e12.mp3", media_type="audio/mpeg", duration=duration)
        ],
    )
    read = await here.stub.GetPost(
        pb.GetPostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("cy")
    )
    [media] = read.post.media
    assert media.media_type == "audio/mpeg"
    assert media.duration.ToTimedelta() == timedelta(minutes=42, seconds=5)
