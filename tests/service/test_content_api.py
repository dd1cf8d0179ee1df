"""Members publish posts in their community and read them back; nothing crosses communities."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select

from services.content.app import SPEC
from services.content.settings import ContentSettings
from services.content.store.tables import idempotency_keys, outbox, posts
from services.kit.access import Role
from studyhall.content.v1 import content_events_pb2 as events
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.errors import field_violations
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service


@pytest.fixture
async def content(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        SPEC,
        ContentSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running


@pytest.fixture
def stub(content: RunningService) -> pb_grpc.ContentServiceStub:
    return pb_grpc.ContentServiceStub(content.channel)


def community() -> str:
    return str(uuid.uuid4())


async def community_of(running: RunningService, *members: str) -> str:
    """A new public community in which each of `members` may publish."""
    community_id = community()
    for user_id in members:
        await grant(running, community_id, user_id, Role.MEMBER)
    return community_id


def article(
    community_id: str,
    *,
    request_id: str = "",
    kind: pb.PostKind.ValueType = pb.POST_KIND_ARTICLE,
    title: str = "Spaced repetition, week one",
    body: str = "What worked: reviewing at 1, 3 and 7 days.",
    tags: Sequence[str] = (),
) -> pb.CreatePostRequest:
    return pb.CreatePostRequest(
        request_id=request_id,
        community_id=community_id,
        kind=kind,
        title=title,
        body=body,
        tags=tags,
    )


async def rows(running: RunningService) -> tuple[int, int]:
    """How many posts and idempotency keys the service's database holds."""
    async with running.deps.database.read() as session:
        post_count = await session.scalar(select(func.count()).select_from(posts))
        key_count = await session.scalar(select(func.count()).select_from(idempotency_keys))
    return int(post_count or 0), int(key_count or 0)


async def test_member_publishes_article_and_reads_it_back(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    community_id = await community_of(content, "ada")
    created = await stub.CreatePost(
        article(community_id, title="  Spaced repetition  ", tags=["memory", "anki", "memory"]),
        metadata=content.auth("ada"),
    )
    post = created.post
    assert uuid.UUID(post.id).version == 4
    assert post.community_id == community_id
    assert post.author_user_id == "ada"
    assert post.kind == pb.POST_KIND_ARTICLE
    assert post.title == "Spaced repetition"
    assert post.body == "What worked: reviewing at 1, 3 and 7 days."
    assert list(post.tags) == ["anki", "memory"]
    assert post.version == 1
    assert post.HasField("create_time")

    fetched = await stub.GetPost(
        pb.GetPostRequest(community_id=community_id, post_id=post.id),
        metadata=content.auth("grace"),
    )
    assert fetched.post == post


async def test_member_shares_link_without_a_body(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    community_id = await community_of(content, "ada")
    created = await stub.CreatePost(
        pb.CreatePostRequest(
            community_id=community_id,
            kind=pb.POST_KIND_LINK,
            title="The forgetting curve, explained",
            url="https://example.org/forgetting-curve?lang=en#summary",
        ),
        metadata=content.auth("ada"),
    )
    fetched = await stub.GetPost(
        pb.GetPostRequest(community_id=community_id, post_id=created.post.id),
        metadata=content.auth("ada"),
    )
    assert fetched.post.url == "https://example.org/forgetting-curve?lang=en#summary"
    assert fetched.post.body == ""


async def test_post_of_another_community_is_not_found(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    home, elsewhere = await community_of(content, "ada"), await community_of(content, "ada")
    created = await stub.CreatePost(article(home), metadata=content.auth("ada"))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPost(
            pb.GetPostRequest(community_id=elsewhere, post_id=created.post.id),
            metadata=content.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"post {created.post.id} not found" in (caught.value.details() or "")


async def test_community_id_in_another_spelling_is_refused_not_missed(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    community_id = await community_of(content, "ada")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(article(community_id.upper()), metadata=content.auth("ada"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lowercase" in field_violations(caught.value)["community_id"]
    assert await rows(content) == (0, 0)


async def test_retry_with_same_request_id_creates_one_post(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    request = article(await community_of(content, "ada"), request_id="publish-1")
    first = await stub.CreatePost(request, metadata=content.auth("ada"))
    second = await stub.CreatePost(request, metadata=content.auth("ada"))

    assert second.post == first.post
    assert await rows(content) == (1, 1)


async def test_same_request_id_from_another_member_is_a_new_post(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    request = article(await community_of(content, "ada", "grace"), request_id="publish-1")
    by_ada = await stub.CreatePost(request, metadata=content.auth("ada"))
    by_grace = await stub.CreatePost(request, metadata=content.auth("grace"))

    assert by_grace.post.id != by_ada.post.id
    assert by_grace.post.author_user_id == "grace"


async def test_same_request_id_with_different_payload_is_refused(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    community_id = await community_of(content, "ada")
    await stub.CreatePost(
        article(community_id, request_id="publish-1"), metadata=content.auth("ada")
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(
            article(community_id, request_id="publish-1", title="Another title"),
            metadata=content.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "publish-1" in (caught.value.details() or "")
    assert await rows(content) == (1, 1)


async def test_missing_fields_are_named_and_nothing_is_written(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    # The edge names what breaks the contract first; the handler then names the rest at once.
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.CreatePost(
            pb.CreatePostRequest(community_id="not-a-uuid", request_id="has spaces"),
            metadata=content.auth("ada"),
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(malformed.value)) == {"community_id", "request_id"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(
            pb.CreatePostRequest(community_id=community()), metadata=content.auth("ada")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert set(violations) == {"kind", "title"}
    assert violations["kind"] == "is required"
    assert await rows(content) == (0, 0)


@pytest.mark.parametrize("kind", [pb.POST_KIND_ARTICLE, pb.POST_KIND_QUESTION])
async def test_article_and_question_need_a_body(
    content: RunningService, stub: pb_grpc.ContentServiceStub, kind: pb.PostKind.ValueType
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(
            article(community(), kind=kind, body="   "), metadata=content.auth("ada")
        )
    assert field_violations(caught.value) == {"body": "is required"}
    assert await rows(content) == (0, 0)


@pytest.mark.parametrize(
    "kind",
    [pb.POST_KIND_LINK, pb.POST_KIND_VIDEO, pb.POST_KIND_AUDIO, pb.POST_KIND_RESOURCE],
)
async def test_pointer_posts_need_a_url(
    content: RunningService, stub: pb_grpc.ContentServiceStub, kind: pb.PostKind.ValueType
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(
            pb.CreatePostRequest(community_id=community(), kind=kind, title="Watch this"),
            metadata=content.auth("ada"),
        )
    assert set(field_violations(caught.value)) == {"url"}


@pytest.mark.parametrize(
    "url",
    [
        "/relative/path",
        "example.org/no-scheme",
        "ftp://example.org/file",
        "javascript:alert(1)",
        "https://",
        "https://exa mple.org/",
        "https://example.org:port/",
        "https://example.org/" + "a" * 2000,
    ],
)
async def test_url_must_be_an_absolute_web_address(
    content: RunningService, stub: pb_grpc.ContentServiceStub, url: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(
            pb.CreatePostRequest(
                community_id=community(), kind=pb.POST_KIND_VIDEO, title="Watch this", url=url
            ),
            metadata=content.auth("ada"),
        )
    assert set(field_violations(caught.value)) == {"url"}
    assert await rows(content) == (0, 0)


async def test_overlong_title_and_body_and_bad_tags_are_all_named(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(
            article(
                community(), title="t" * 201, body="b" * 50_001, tags=["ok", "not ok", "#hash"]
            ),
            metadata=content.auth("ada"),
        )
    violations = field_violations(caught.value)
    assert set(violations) == {"title", "body", "tags[1]", "tags[2]"}
    assert "at most 200" in violations["title"]
    assert "at most 50000" in violations["body"]


async def test_longest_allowed_title_and_body_are_accepted(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    created = await stub.CreatePost(
        article(await community_of(content, "ada"), title="t" * 200, body="b" * 50_000),
        metadata=content.auth("ada"),
    )
    assert len(created.post.body) == 50_000


async def test_unknown_kind_is_invalid(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(
            article(community(), kind=pb.PostKind.ValueType(99)), metadata=content.auth("ada")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"kind"}


async def test_malformed_post_id_is_invalid(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPost(
            pb.GetPostRequest(community_id=community(), post_id="42"),
            metadata=content.auth("ada"),
        )
    assert set(field_violations(caught.value)) == {"post_id"}


async def test_call_without_token_is_unauthenticated(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    community_id = community()
    with pytest.raises(grpc.aio.AioRpcError) as created:
        await stub.CreatePost(article(community_id))
    assert created.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as fetched:
        await stub.GetPost(pb.GetPostRequest(community_id=community_id, post_id=str(uuid.uuid4())))
    assert fetched.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await rows(content) == (0, 0)


async def test_operator_cannot_post_into_a_community_that_does_not_exist(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePost(article(community()), metadata=content.auth("ops", operator=True))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await rows(content) == (0, 0)


async def test_a_published_post_stages_post_created_once_and_a_refused_one_nothing(
    content: RunningService, stub: pb_grpc.ContentServiceStub
) -> None:
    community_id = await community_of(content, "ada")
    request = article(community_id, request_id="post-1")
    created = await stub.CreatePost(request, metadata=content.auth("ada"))
    await stub.CreatePost(request, metadata=content.auth("ada"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreatePost(article(community_id, title=""), metadata=content.auth("ada"))
    async with content.deps.database.read() as session:
        staged = (
            await session.execute(select(outbox).where(outbox.c.community_id == community_id))
        ).all()
    [row] = staged
    assert row.event_type == "studyhall.content.v1.PostCreated"
    assert row.nats_subject == f"studyhall.content.{community_id}.PostCreated"
    fact = events.PostCreated.FromString(row.payload)
    assert (fact.community_id, fact.post_id, fact.author_user_id, fact.version) == (
        community_id,
        created.post.id,
        "ada",
        1,
    )
    assert fact.create_time == created.post.create_time
