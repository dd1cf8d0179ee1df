"""Search through the gRPC API, on SQLite (FTS5) and PostgreSQL (a `simple` tsvector), both
fed by one analyzer: two-character Chinese words, English stems and mixed text match; titles,
bodies, tags and comments are searched; drafts, deleted posts and paid bodies never show; a
private community's posts never reach outsiders, nor one community's another's; results are
ranked and paginated; bad queries are refused naming the field."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import text

from services.content.search import store as search_store
from services.content.text import BLOCK_BITS, block_term
from services.kit.access import PRIVATE, Role
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service

PRODUCT = "prod-reading-course"


class Community:
    """A community of its own in the content service: a moderator ("mo"), members."""

    def __init__(self, running: RunningService, *, private: bool = False) -> None:
        self.running = running
        self.id = str(uuid.uuid4())
        self.private = private
        self.stub = pb_grpc.ContentServiceStub(running.channel)

    async def setup(self) -> Community:
        visibility = {"visibility": PRIVATE} if self.private else {}
        for user, role in [("mo", Role.MODERATOR), ("bo", Role.MEMBER), ("cy", Role.MEMBER)]:
            await grant(self.running, self.id, user, role, **visibility)
        return self

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.running.auth(user)

    async def post(
        self, title: str, body: str = "Notes of the day.", user: str = "bo", **fields: Any
    ) -> str:
        reply = await self.stub.CreatePost(
            pb.CreatePostRequest(
                community_id=self.id, kind=pb.POST_KIND_ARTICLE, title=title, body=body, **fields
            ),
            metadata=self.auth(user),
        )
        return str(reply.post.id)

    async def comment(self, post_id: str, body: str, user: str = "cy") -> str:
        reply = await self.stub.AddComment(
            pb.AddCommentRequest(community_id=self.id, post_id=post_id, body=body),
            metadata=self.auth(user),
        )
        return str(reply.comment.id)

    async def search(self, query: str, user: str = "bo", **paging: Any) -> pb.SearchPostsResponse:
        reply: pb.SearchPostsResponse = await self.stub.SearchPosts(
            pb.SearchPostsRequest(community_id=self.id, query=query, **paging),
            metadata=self.auth(user),
        )
        return reply

    async def found(self, query: str, user: str = "bo") -> set[str]:
        return {hit.post.id for hit in (await self.search(query, user)).hits}


async def test_two_character_chinese_words_english_stems_and_mixed_text_match(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    operations = await here.post("社区运营的定位", "先做用户画像，再每天打卡。")  # noqa: RUF001
    english = await here.post(
        "Studying English every day", "I studied phrasal verbs.", tags=["grammar"]
    )
    mixed = await here.post("英语学习 study plan", "每天打卡 reading 三十分钟")
    await here.post("Weekly goals", "Nothing to find here.")

    assert await here.found("运营") == {operations}
    assert await here.found("定位") == {operations}
    assert await here.found("画像") == {operations}
    assert await here.found("打卡") == {operations, mixed}
    assert await here.found("study") == {english, mixed}
    assert await here.found("Studies") == {english, mixed}
    assert await here.found("打卡 reading") == {mixed}
    assert await here.found("grammar") == {english}
    assert await here.found("运营 grammar") == set()
    hits = (await here.search("phrasal")).hits
    assert [(hit.post.id, hit.matched_in) for hit in hits] == [(english, "body")]


async def test_comments_are_searched_and_leave_with_their_edit_or_deletion(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post_id = await here.post("Weekly review")
    comment_id = await here.comment(post_id, "复盘很有用，坚持打卡")  # noqa: RUF001
    hits = (await here.search("复盘")).hits
    assert [(hit.post.id, hit.matched_in) for hit in hits] == [(post_id, "comment")]

    await here.stub.UpdateComment(
        pb.UpdateCommentRequest(community_id=here.id, comment_id=comment_id, body="Flashcards"),
        metadata=here.auth("cy"),
    )
    assert await here.found("复盘") == set()
    assert await here.found("flashcard") == {post_id}

    await here.stub.DeleteComment(
        pb.DeleteCommentRequest(community_id=here.id, comment_id=comment_id),
        metadata=here.auth("mo"),
    )
    assert await here.found("flashcard") == set()


async def test_drafts_deleted_posts_and_edits_follow_what_readers_may_see(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    draft = await here.post("定位草稿", draft=True)
    assert await here.found("草稿") == set()
    assert await here.found("草稿", user="mo") == set()
    await here.stub.PublishPost(
        pb.PublishPostRequest(community_id=here.id, post_id=draft), metadata=here.auth("bo")
    )
    assert await here.found("草稿") == {draft}

    await here.stub.DeletePost(
        pb.DeletePostRequest(community_id=here.id, post_id=draft), metadata=here.auth("mo")
    )
    assert await here.found("草稿") == set()
    await here.stub.RestorePost(
        pb.RestorePostRequest(community_id=here.id, post_id=draft), metadata=here.auth("mo")
    )
    assert await here.found("草稿") == {draft}

    await here.stub.UpdatePost(
        pb.UpdatePostRequest(
            community_id=here.id,
            post_id=draft,
            post=pb.Post(title="Pronunciation drills"),
            update_mask=FieldMask(paths=["title"]),
        ),
        metadata=here.auth("bo"),
    )
    assert await here.found("草稿") == set()
    assert await here.found("drill") == {draft}


async def test_a_paid_posts_body_is_never_searched_and_never_shown(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    paid = await here.post("Reading course, lesson one", "秘诀：每天精读一篇")  # noqa: RUF001
    await here.stub.SetPostProduct(
        pb.SetPostProductRequest(community_id=here.id, post_id=paid, product_id=PRODUCT),
        metadata=here.auth("bo"),
    )
    for user in ("cy", "bo", "mo"):
        assert await here.found("秘诀", user=user) == set()
    [hit] = (await here.search("lesson", user="cy")).hits
    assert (hit.post.id, hit.post.body, hit.post.required_product_id) == (paid, "", PRODUCT)


async def test_private_and_other_communities_stay_out_of_reach(content: RunningService) -> None:
    private = await Community(content, private=True).setup()
    await private.post("私密社群的运营手册")
    other = await Community(content).setup()
    assert await private.found("手册") != set()
    assert await other.found("手册") == set()

    outsider = content.auth("stranger")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await private.stub.SearchPosts(
            pb.SearchPostsRequest(community_id=private.id, query="手册"), metadata=outsider
        )
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND


async def test_results_are_ranked_and_paged_without_repeats(content: RunningService) -> None:
    """A title beats a body, a body beats a comment, whatever their age; newest first within."""
    here = await Community(content).setup()
    titled = await here.post("Vocabulary lists")
    in_body = await here.post("Weekly note", "New vocabulary every day.")
    in_comment = await here.post("Reading log")
    await here.comment(in_comment, "My vocabulary doubled.")
    newer_titles = [await here.post(f"Vocabulary, week {n}") for n in range(3)]

    seen: list[str] = []
    token = ""
    while True:
        reply = await here.search("vocabulary", page_size=2, page_token=token)
        seen.extend(hit.post.id for hit in reply.hits)
        token = reply.next_page_token
        if not token:
            break
    assert seen == [*reversed(newer_titles), titled, in_body, in_comment]


async def test_the_newest_matches_are_ranked_whichever_blocks_hold_them(
    content: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Search ranks the newest `WINDOW` matches. On PostgreSQL it asks the community's newest
    blocks of documents first and every block only when those hold fewer matches than the
    window: both ways end with the same window."""
    monkeypatch.setattr(search_store, "WINDOW", 3)
    here = await Community(content).setup()
    old = [await here.post(f"Reading log {n}") for n in range(2)]
    database = content.deps.database
    if not database.is_sqlite:
        # The next documents start a block of their own, far past the recent blocks.
        async with database.write() as session:
            await session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('search_documents', 'id'), "
                    "(SELECT max(id) FROM search_documents) + :jump)"
                ),
                {"jump": (max(search_store.STAGES) + 2) << BLOCK_BITS},
            )
    new = [await here.post(f"Reading plan {n}") for n in range(4)]
    if not database.is_sqlite:
        # The block term the recent blocks are asked by is the one the documents hold.
        async with database.read() as session:
            newest = (
                await session.execute(text("SELECT max(id) FROM search_documents"))
            ).scalar_one()
            held = await session.execute(
                text(
                    "SELECT count(*) FROM search_documents "
                    "WHERE terms_vector @@ to_tsquery('simple', :block)"
                ),
                {"block": block_term(here.id, newest >> BLOCK_BITS)},
            )
            assert held.scalar() == 8  # each new post's title and body

    # Six posts hold "reading", the newest three are ranked: from the recent blocks alone.
    assert await here.found("reading") == set(new[1:])
    # Only the old posts hold "log", in blocks the recent ones do not reach.
    assert await here.found("log") == set(old)


async def test_erased_text_is_no_longer_found(content: RunningService) -> None:
    here = await Community(content).setup()
    post_id = await here.post("我的打卡日记", "第一天")
    other = await here.post("Reading list")
    await here.comment(other, "打卡第二天", user="bo")
    assert await here.found("打卡") == {post_id, other}
    await here.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=here.id, confirm=True, erase_text=True),
        metadata=here.auth("bo"),
    )
    assert await here.found("打卡", user="cy") == set()


@pytest.mark.parametrize(
    ("query", "field"),
    [("", "query"), ("   ", "query"), ("？！……", "query"), ("x" * 201, "query")],  # noqa: RUF001
)
async def test_a_query_without_words_is_refused_naming_the_field(
    content: RunningService, query: str, field: str
) -> None:
    here = await Community(content).setup()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await here.search(query)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)
