"""Comments, reactions and answers through the gRPC API, on SQLite and PostgreSQL: threads
one level deep, edits with etags, deletion by the author or a moderator, muted members and
archived communities refused, answers counted and accepted one at a time with their facts
staged in the outbox in order, reactions counted right under concurrent calls, and bad
input refused naming the field with nothing written."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import select, update

from services.content.store.tables import access, metadata, outbox, posts
from services.kit.access import Role
from studyhall.content.v1 import content_events_pb2 as events
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.catalogue import changed_tables, snapshot
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service

LIKE = pb.REACTION_KIND_LIKE
HELPFUL = pb.REACTION_KIND_HELPFUL


class Community:
    """A new community in the content service with a moderator ("mo") and members."""

    def __init__(self, running: RunningService) -> None:
        self.running = running
        self.id = str(uuid.uuid4())
        self.stub = pb_grpc.ContentServiceStub(running.channel)

    async def setup(self) -> Community:
        for user, role in [("mo", Role.MODERATOR), ("bo", Role.MEMBER), ("cy", Role.MEMBER)]:
            await grant(self.running, self.id, user, role)
        return self

    def auth(self, user: str) -> list[tuple[str, str]]:
        if user == "root":
            return self.running.auth(user, operator=True)
        return self.running.auth(user)

    async def post(self, user: str = "bo", **fields: Any) -> pb.Post:
        values: dict[str, Any] = {
            "kind": pb.POST_KIND_ARTICLE,
            "title": "Reading log",
            "body": "Chapter 4.",
        }
        values.update(fields)
        reply: pb.CreatePostResponse = await self.stub.CreatePost(
            pb.CreatePostRequest(community_id=self.id, **values), metadata=self.auth(user)
        )
        return reply.post

    async def question(self, user: str = "bo") -> pb.Post:
        return await self.post(
            user, kind=pb.POST_KIND_QUESTION, title="Present perfect or past simple?"
        )

    async def comment(
        self, user: str, post_id: str, body: str = "Good point.", parent: str = ""
    ) -> pb.Comment:
        reply: pb.AddCommentResponse = await self.stub.AddComment(
            pb.AddCommentRequest(
                community_id=self.id, post_id=post_id, parent_comment_id=parent, body=body
            ),
            metadata=self.auth(user),
        )
        return reply.comment

    async def thread(self, user: str, post_id: str, parent: str = "") -> list[pb.Comment]:
        reply = await self.stub.ListComments(
            pb.ListCommentsRequest(community_id=self.id, post_id=post_id, parent_comment_id=parent),
            metadata=self.auth(user),
        )
        return list(reply.comments)

    async def get(self, post_id: str, user: str = "bo") -> pb.Post:
        reply: pb.GetPostResponse = await self.stub.GetPost(
            pb.GetPostRequest(community_id=self.id, post_id=post_id), metadata=self.auth(user)
        )
        return reply.post

    async def unanswered(self) -> list[str]:
        reply = await self.stub.ListUnansweredQuestions(
            pb.ListUnansweredQuestionsRequest(community_id=self.id), metadata=self.auth("mo")
        )
        return [question.id for question in reply.questions]

    async def answer_count(self, post_id: str) -> int:
        async with self.running.deps.database.read() as session:
            found = await session.scalar(select(posts.c.answer_count).where(posts.c.id == post_id))
        return int(found or 0)

    async def facts(self, *names: str) -> list[Any]:
        """The facts staged in the community, in order; only those named, when named."""
        async with self.running.deps.database.read() as session:
            rows = await session.execute(
                select(outbox.c.event_type, outbox.c.payload)
                .where(outbox.c.community_id == self.id)
                .order_by(outbox.c.seq)
            )
            found = []
            for event_type, payload in rows:
                name = str(event_type).rsplit(".", 1)[-1]
                if not names or name in names:
                    found.append(getattr(events, name).FromString(payload))
            return found

    async def mute(self, user: str) -> None:
        await self._change_standing(
            user, muted_until=datetime(9999, 12, 31, tzinfo=UTC), version=100
        )

    async def archive(self) -> None:
        async with self.running.deps.database.write() as session:
            await session.execute(
                update(access.communities)
                .where(access.communities.c.community_id == self.id)
                .values(archived=True)
            )
        for user in ("mo", "bo", "cy"):
            await self._forget(user)

    async def gate_links(self) -> None:
        """Levels as members' LevelsChanged leaves them: post_links from level 2."""
        row = {"community_id": self.id, "privileges": [[], ["post_links"]], "version": 1}
        async with self.running.deps.database.write() as session:
            await session.execute(access.levels.insert().values(**row))
        for user in ("mo", "bo", "cy"):
            await self._forget(user)

    async def _change_standing(self, user: str, **values: Any) -> None:
        roles = access.roles
        async with self.running.deps.database.write() as session:
            await session.execute(
                update(roles)
                .where(roles.c.community_id == self.id, roles.c.user_id == user)
                .values(**values)
            )
        await self._forget(user)

    async def _forget(self, user: str) -> None:
        key = f"studyhall:content:standing:{self.id}:{user}"
        await self.running.deps.redis.call(lambda client: client.delete(key), None)


async def refused(call: Any, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def kinds(facts: list[Any]) -> list[str]:
    return [type(fact).__name__ for fact in facts]


async def test_comments_and_replies_thread_one_level_deep(content: RunningService) -> None:
    here = await Community(content).setup()
    post = await here.post("bo")
    first = await here.comment("cy", post.id, "Which edition?  \n")
    assert (first.body, first.version, first.etag, first.is_answer) == (
        "Which edition?",
        1,
        "v1",
        False,
    )
    reply = await here.comment("bo", post.id, "The second.", parent=first.id)
    assert reply.parent_comment_id == first.id
    second = await here.comment("mo", post.id, "Nice log.")

    error = await refused(
        here.stub.AddComment(
            pb.AddCommentRequest(
                community_id=here.id, post_id=post.id, parent_comment_id=reply.id, body="deeper"
            ),
            metadata=here.auth("cy"),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(field_violations(error)) == ["parent_comment_id"]

    top = await here.thread("cy", post.id)
    assert [c.id for c in top] == [first.id, second.id]
    assert [c.reply_count for c in top] == [1, 0]
    assert [c.id for c in await here.thread("cy", post.id, parent=first.id)] == [reply.id]
    assert (await here.get(post.id)).comment_count == 3

    more = [await here.comment("cy", post.id, f"Note {n}") for n in range(3)]
    page = await here.stub.ListComments(
        pb.ListCommentsRequest(community_id=here.id, post_id=post.id, page_size=2),
        metadata=here.auth("bo"),
    )
    rest = await here.stub.ListComments(
        pb.ListCommentsRequest(
            community_id=here.id, post_id=post.id, page_size=10, page_token=page.next_page_token
        ),
        metadata=here.auth("bo"),
    )
    assert [c.id for c in page.comments] == [first.id, second.id]
    assert [c.id for c in rest.comments] == [c.id for c in more]
    assert rest.next_page_token == ""

    added = await here.facts("CommentAdded")
    assert [fact.comment_id for fact in added] == [first.id, reply.id, second.id] + [
        c.id for c in more
    ]
    assert added[1].post_id == post.id
    assert added[1].author_user_id == "bo"


async def test_only_published_posts_take_comments(content: RunningService) -> None:
    here = await Community(content).setup()
    draft = await here.post("bo", draft=True)
    await refused(here.comment("bo", draft.id), grpc.StatusCode.FAILED_PRECONDITION)
    error = await refused(here.comment("cy", draft.id), grpc.StatusCode.NOT_FOUND)
    assert (error.details() or "").endswith(f"post {draft.id} not found in community {here.id}")
    await refused(
        here.stub.React(
            pb.ReactRequest(community_id=here.id, post_id=draft.id, kind=LIKE),
            metadata=here.auth("cy"),
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_a_comment_is_edited_by_its_author_with_a_current_etag(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.post("bo")
    comment = await here.comment("cy", post.id, "Teh second edition.")

    def edit(user: str, body: str, etag: str = "") -> Any:
        return here.stub.UpdateComment(
            pb.UpdateCommentRequest(
                community_id=here.id, comment_id=comment.id, body=body, etag=etag
            ),
            metadata=here.auth(user),
        )

    edited = (await edit("cy", "The second edition.", comment.etag)).comment
    assert (edited.body, edited.version, edited.etag) == ("The second edition.", 2, "v2")
    assert edited.HasField("update_time")
    await refused(
        edit("cy", "The third edition.", comment.etag), grpc.StatusCode.FAILED_PRECONDITION
    )
    error = await refused(edit("mo", "Moderated."), grpc.StatusCode.PERMISSION_DENIED)
    assert error.details() == f"only its author may edit comment {comment.id}"
    fixed = (await edit("root", "The second edition (2019).", "v2")).comment
    assert fixed.version == 3

    edits = await here.facts("CommentEdited")
    assert [(fact.comment_id, fact.version) for fact in edits] == [(comment.id, 2), (comment.id, 3)]


async def test_a_comment_is_deleted_by_its_author_or_a_moderator_and_keeps_its_place(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.post("bo")
    own = await here.comment("cy", post.id, "Wrong thread, sorry.")
    other = await here.comment("bo", post.id, "Off topic.")
    await here.comment("cy", post.id, "Replying anyway.", parent=other.id)

    def delete(user: str, comment_id: str) -> Any:
        return here.stub.DeleteComment(
            pb.DeleteCommentRequest(community_id=here.id, comment_id=comment_id),
            metadata=here.auth(user),
        )

    gone = (await delete("cy", own.id)).comment
    assert (gone.body, gone.version) == ("", 2)
    assert gone.HasField("delete_time")
    error = await refused(delete("cy", other.id), grpc.StatusCode.PERMISSION_DENIED)
    assert "deleting another member's comment needs the moderator role" in (error.details() or "")
    removed = (await delete("mo", other.id)).comment
    assert removed.body == ""
    assert removed.reply_count == 1
    await refused(delete("mo", other.id), grpc.StatusCode.FAILED_PRECONDITION)
    await refused(
        here.stub.UpdateComment(
            pb.UpdateCommentRequest(community_id=here.id, comment_id=own.id, body="Back"),
            metadata=here.auth("cy"),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    listed = await here.thread("bo", post.id)
    assert [(c.id, c.body, c.HasField("delete_time")) for c in listed] == [
        (own.id, "", True),
        (other.id, "", True),
    ]
    assert (await here.get(post.id)).comment_count == 1
    deleted = await here.facts("CommentDeleted")
    assert [(f.comment_id, f.author_user_id, f.deleted_by_user_id) for f in deleted] == [
        (own.id, "cy", "cy"),
        (other.id, "bo", "mo"),
    ]


async def test_records_of_another_community_are_not_found(content: RunningService) -> None:
    here = await Community(content).setup()
    there = await Community(content).setup()
    post = await there.post("bo")
    comment = await there.comment("cy", post.id)
    error = await refused(here.comment("cy", post.id), grpc.StatusCode.NOT_FOUND)
    assert (error.details() or "").endswith(f"post {post.id} not found in community {here.id}")
    error = await refused(
        here.stub.DeleteComment(
            pb.DeleteCommentRequest(community_id=here.id, comment_id=comment.id),
            metadata=here.auth("mo"),
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert (error.details() or "").endswith(
        f"comment {comment.id} not found in community {here.id}"
    )


async def test_muted_members_and_archived_communities_are_refused(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.post("bo")
    comment = await here.comment("cy", post.id)
    await here.mute("cy")
    error = await refused(here.comment("cy", post.id), grpc.StatusCode.PERMISSION_DENIED)
    assert "muted" in (error.details() or "")
    await refused(
        here.stub.React(
            pb.ReactRequest(community_id=here.id, post_id=post.id, kind=LIKE),
            metadata=here.auth("cy"),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )

    await here.archive()
    error = await refused(here.comment("bo", post.id), grpc.StatusCode.FAILED_PRECONDITION)
    assert "archived" in (error.details() or "")
    await refused(
        here.stub.React(
            pb.ReactRequest(community_id=here.id, comment_id=comment.id, kind=LIKE),
            metadata=here.auth("bo"),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await refused(
        here.stub.DeleteComment(
            pb.DeleteCommentRequest(community_id=here.id, comment_id=comment.id),
            metadata=here.auth("mo"),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert [c.id for c in await here.thread("bo", post.id)] == [comment.id]


async def test_links_in_comments_need_post_links_once_a_level_names_it(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.post("bo")
    plain = await here.comment("cy", post.id, "See https://example.org/tenses")
    await here.gate_links()
    error = await refused(
        here.comment("cy", post.id, "Also http://example.org/aspect"),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "post_links" in (error.details() or "")
    await refused(
        here.stub.UpdateComment(
            pb.UpdateCommentRequest(
                community_id=here.id, comment_id=plain.id, body="Now https://example.org/x"
            ),
            metadata=here.auth("cy"),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert (await here.comment("cy", post.id, "No links this time.")).body
    assert (await here.comment("mo", post.id, "Read https://example.org/faq")).body


async def test_answers_are_counted_and_leave_the_unanswered_queue(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    asked = await here.question("bo")
    article = await here.post("bo")
    assert await here.unanswered() == [asked.id]
    await refused(
        here.stub.ListUnansweredQuestions(
            pb.ListUnansweredQuestionsRequest(community_id=here.id), metadata=here.auth("cy")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert not (await here.comment("cy", article.id)).is_answer

    answer = await here.comment("cy", asked.id, "Past simple: the time is finished.")
    reply = await here.comment("bo", asked.id, "Thanks!", parent=answer.id)
    second = await here.comment("mo", asked.id, "Agreed with cy.")
    assert answer.is_answer
    assert second.is_answer
    assert not reply.is_answer
    assert await here.answer_count(asked.id) == 2
    after = await here.get(asked.id)
    assert after.first_answer_time == answer.create_time
    assert await here.unanswered() == []

    for comment in (answer, second):
        await here.stub.DeleteComment(
            pb.DeleteCommentRequest(community_id=here.id, comment_id=comment.id),
            metadata=here.auth("mo"),
        )
    assert await here.answer_count(asked.id) == 0
    assert await here.unanswered() == [asked.id]
    assert (await here.get(asked.id)).first_answer_time == answer.create_time
    assert [f.is_answer for f in await here.facts("CommentAdded")] == [False, True, False, True]


async def test_accepting_another_answer_unaccepts_the_first_in_order(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    asked = await here.question("bo")
    first = await here.comment("cy", asked.id, "Past simple.")
    second = await here.comment("mo", asked.id, "Past simple, with 'yesterday'.")
    reply = await here.comment("cy", asked.id, "Indeed.", parent=second.id)

    def accept(user: str, answer_id: str) -> Any:
        return here.stub.AcceptAnswer(
            pb.AcceptAnswerRequest(community_id=here.id, question_id=asked.id, answer_id=answer_id),
            metadata=here.auth(user),
        )

    def unaccept(user: str) -> Any:
        return here.stub.UnacceptAnswer(
            pb.UnacceptAnswerRequest(community_id=here.id, question_id=asked.id),
            metadata=here.auth(user),
        )

    error = await refused(accept("cy", first.id), grpc.StatusCode.PERMISSION_DENIED)
    assert "accepting an answer to another member's question" in (error.details() or "")
    error = await refused(accept("bo", reply.id), grpc.StatusCode.INVALID_ARGUMENT)
    assert list(field_violations(error)) == ["answer_id"]
    await refused(unaccept("bo"), grpc.StatusCode.FAILED_PRECONDITION)

    accepted = (await accept("bo", first.id)).question
    assert (accepted.accepted_answer_id, accepted.version) == (first.id, 2)
    again = (await accept("bo", first.id)).question
    assert (again.accepted_answer_id, again.version) == (first.id, 2)
    listed = await here.thread("bo", asked.id)
    assert [(c.id, c.accepted) for c in listed] == [(first.id, True), (second.id, False)]
    switched = (await accept("mo", second.id)).question
    assert (switched.accepted_answer_id, switched.version) == (second.id, 4)
    assert switched.comment_count == 3
    withdrawn = (await unaccept("bo")).question
    assert (withdrawn.accepted_answer_id, withdrawn.version) == ("", 5)
    await refused(unaccept("bo"), grpc.StatusCode.FAILED_PRECONDITION)
    await accept("bo", first.id)
    await here.stub.DeleteComment(
        pb.DeleteCommentRequest(community_id=here.id, comment_id=first.id),
        metadata=here.auth("cy"),
    )
    assert (await here.get(asked.id)).accepted_answer_id == ""

    facts = await here.facts("AnswerAccepted", "AnswerUnaccepted")
    assert [(type(f).__name__, f.answer_id, f.answer_author_user_id, f.version) for f in facts] == [
        ("AnswerAccepted", first.id, "cy", 2),
        ("AnswerUnaccepted", first.id, "cy", 3),
        ("AnswerAccepted", second.id, "mo", 4),
        ("AnswerUnaccepted", second.id, "mo", 5),
        ("AnswerAccepted", first.id, "cy", 6),
        ("AnswerUnaccepted", first.id, "cy", 7),
    ]
    assert [f.accepted_by_user_id for f in facts if isinstance(f, events.AnswerAccepted)] == [
        "bo",
        "mo",
        "bo",
    ]
    assert facts[-1].unaccepted_by_user_id == "cy"


async def test_concurrent_reactions_count_once_per_member_and_kind(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.post("bo")
    comment = await here.comment("cy", post.id)
    readers = [f"reader-{n}" for n in range(30)]
    for user in readers:
        await grant(content, here.id, user, Role.MEMBER)

    def react(user: str, kind: pb.ReactionKind.ValueType = LIKE, **target: str) -> Any:
        return here.stub.React(
            pb.ReactRequest(community_id=here.id, kind=kind, **(target or {"post_id": post.id})),
            metadata=here.auth(user),
        )

    await asyncio.gather(*(react(user) for user in readers))
    await asyncio.gather(*(react("cy", comment_id=comment.id) for _ in range(30)))
    both = await react("cy", HELPFUL, comment_id=comment.id)
    assert [(r.kind, r.count) for r in both.reactions] == [(LIKE, 1), (HELPFUL, 1)]
    assert [(r.kind, r.count) for r in (await here.get(post.id)).reactions] == [(LIKE, 30)]

    taken = await asyncio.gather(
        *(
            here.stub.Unreact(
                pb.UnreactRequest(community_id=here.id, post_id=post.id, kind=LIKE),
                metadata=here.auth(user),
            )
            for user in readers[:10] + readers[:10]
        )
    )
    # Each answer counts what was committed when it ran; the last one to commit sees all.
    assert all(20 <= r.reactions[0].count < 30 for r in taken)
    assert [(r.kind, r.count) for r in (await here.get(post.id)).reactions] == [(LIKE, 20)]
    added = await here.facts("ReactionAdded")
    removed = await here.facts("ReactionRemoved")
    assert len(added) == 32
    assert len(removed) == 10
    assert sorted(f.comment_id for f in added if f.user_id == "cy") == sorted(
        [comment.id, comment.id]
    )
    listed = await here.thread("bo", post.id)
    assert [(r.kind, r.count) for r in listed[0].reactions] == [(LIKE, 1), (HELPFUL, 1)]


async def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.post("bo")
    top = await here.comment("cy", post.id)
    reply = await here.comment("bo", post.id, "Yes.", parent=top.id)
    cases: list[tuple[str, Any]] = [
        ("kind", pb.ReactRequest(community_id=here.id, post_id=post.id)),
        ("kind", pb.ReactRequest(community_id=here.id, post_id=post.id, kind=99)),  # type: ignore[arg-type]
        ("kind", pb.UnreactRequest(community_id=here.id, comment_id=top.id)),
        ("body", pb.AddCommentRequest(community_id=here.id, post_id=post.id, body=" \n ")),
        ("body", pb.AddCommentRequest(community_id=here.id, post_id=post.id, body="x" * 10_001)),
        (
            "parent_comment_id",
            pb.AddCommentRequest(
                community_id=here.id, post_id=post.id, parent_comment_id=reply.id, body="Deeper"
            ),
        ),
        ("post_id", pb.AddCommentRequest(community_id=here.id, body="Where?")),
        ("body", pb.UpdateCommentRequest(community_id=here.id, comment_id=top.id, body="")),
    ]
    for field, request in cases:
        method = getattr(here.stub, type(request).__name__.removesuffix("Request"))
        before = await snapshot(content, metadata)
        error = await refused(
            method(request, metadata=here.auth("cy")), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert list(field_violations(error)) == [field], (request, error.details())
        assert changed_tables(before, await snapshot(content, metadata)) == []


async def test_a_members_comments_and_reactions_are_exported_and_erased(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post = await here.question("bo")
    answer = await here.comment("cy", post.id, "Past simple.")
    await here.comment("bo", post.id, "Thanks.", parent=answer.id)
    await here.stub.React(
        pb.ReactRequest(community_id=here.id, post_id=post.id, kind=HELPFUL),
        metadata=here.auth("cy"),
    )
    exported = json.loads(
        (
            await here.stub.ExportMyData(
                pb.ExportMyDataRequest(community_id=here.id), metadata=here.auth("cy")
            )
        ).document
    )
    assert [(c["id"], c["is_answer"], c["body"]) for c in exported["comments"]] == [
        (answer.id, True, "Past simple.")
    ]
    assert [(r["post_id"], r["comment_id"], r["kind"]) for r in exported["reactions"]] == [
        (post.id, "", "helpful")
    ]

    await here.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=here.id, confirm=True, erase_text=True),
        metadata=here.auth("cy"),
    )
    [kept] = await here.thread("bo", post.id)
    assert (kept.id, kept.author_user_id, kept.body, kept.reply_count) == (answer.id, "", "", 1)
    assert kept.version == 3
    assert list((await here.get(post.id)).reactions) == []
