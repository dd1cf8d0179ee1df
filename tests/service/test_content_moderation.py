"""Moderation of posts through the gRPC API, on SQLite and PostgreSQL: a keyword rule that
holds puts a post into review (seen by its author and moderators only, in no feed or search,
no PostCreated until approved); moderators hide, remove and restore with reasons, each step
checked; the author appeals once and another moderator decides; every step is in the
moderation log and leaves a fact; refused requests change nothing. Comments too: held,
approved (CommentAdded once), hidden, appealed and restored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select

from services.content.moderation import consumers
from services.content.store.tables import outbox
from services.kit.access import Role
from studyhall.content.v1 import content_events_pb2 as events
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import members_events_pb2 as members_events
from studyhall.members.v1 import members_service_pb2 as members_pb
from tests.support.access import grant
from tests.support.errors import field_violations
from tests.support.services import RunningService
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

POST = pb.MODERATION_TARGET_KIND_POST
COMMENT = pb.MODERATION_TARGET_KIND_COMMENT


class Community:
    def __init__(self, running: RunningService) -> None:
        self.running = running
        self.id = str(uuid.uuid4())
        self.stub = pb_grpc.ContentServiceStub(running.channel)

    async def setup(self) -> Community:
        people = [
            ("mo", Role.MODERATOR),
            ("mo2", Role.MODERATOR),
            ("ad", Role.ADMIN),
            ("bo", Role.MEMBER),
            ("al", Role.MEMBER),
        ]
        for user, role in people:
            await grant(self.running, self.id, user, role)
        return self

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.running.auth(user)

    async def watch(self, phrase: str, action: Any = pb.KEYWORD_RULE_ACTION_HOLD) -> None:
        await self.stub.AddKeywordRule(
            pb.AddKeywordRuleRequest(community_id=self.id, phrase=phrase, action=action),
            metadata=self.auth("mo"),
        )

    async def post(self, **fields: Any) -> pb.Post:
        values: dict[str, Any] = {
            "kind": pb.POST_KIND_ARTICLE,
            "title": "Pronunciation drills",
            "body": "Minimal pairs for the th sound.",
        }
        values.update(fields)
        reply: pb.CreatePostResponse = await self.stub.CreatePost(
            pb.CreatePostRequest(community_id=self.id, **values), metadata=self.auth("bo")
        )
        return reply.post

    async def moderate(
        self, post_id: str, action: Any, reason: str = "", by: str = "mo"
    ) -> pb.ModerationCase:
        reply: pb.ModerateContentResponse = await self.stub.ModerateContent(
            pb.ModerateContentRequest(
                community_id=self.id,
                target_kind=POST,
                target_id=post_id,
                action=action,
                reason=reason,
            ),
            metadata=self.auth(by),
        )
        return reply.case

    async def appeal(self, post_id: str, statement: str, by: str = "bo") -> pb.ModerationCase:
        reply: pb.AppealModerationResponse = await self.stub.AppealModeration(
            pb.AppealModerationRequest(
                community_id=self.id, target_kind=POST, target_id=post_id, statement=statement
            ),
            metadata=self.auth(by),
        )
        return reply.case

    async def state(self, post_id: str, user: str = "bo") -> Any:
        reply = await self.stub.GetPost(
            pb.GetPostRequest(community_id=self.id, post_id=post_id), metadata=self.auth(user)
        )
        return reply.post.state

    async def feed(self, user: str = "al") -> list[str]:
        reply = await self.stub.ListPosts(
            pb.ListPostsRequest(community_id=self.id), metadata=self.auth(user)
        )
        return [post.id for post in [*reply.pinned, *reply.posts]]

    async def found(self, query: str) -> list[str]:
        reply = await self.stub.SearchPosts(
            pb.SearchPostsRequest(community_id=self.id, query=query), metadata=self.auth("mo")
        )
        return [hit.post.id for hit in reply.hits]

    async def queue(self, reason: Any = pb.REVIEW_REASON_UNSPECIFIED) -> list[str]:
        reply = await self.stub.ListReviewQueue(
            pb.ListReviewQueueRequest(community_id=self.id, reason=reason),
            metadata=self.auth("mo"),
        )
        return [case.target_id for case in reply.cases]

    async def log(self) -> list[tuple[str, str, str]]:
        reply = await self.stub.ListModerationLog(
            pb.ListModerationLogRequest(community_id=self.id), metadata=self.auth("mo")
        )
        return [(entry.action, entry.actor_user_id, entry.reason) for entry in reply.entries]

    async def facts(self) -> list[str]:
        async with self.running.deps.database.read() as session:
            types = await session.scalars(
                select(outbox.c.event_type)
                .where(outbox.c.community_id == self.id)
                .order_by(outbox.c.seq)
            )
            return [name.rsplit(".", 1)[-1] for name in types]


async def refused(call: Any, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    assert error.value.code() is code, error.value.details()
    return error.value


async def test_a_held_post_waits_unseen_until_a_moderator_approves_it(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    await here.watch("casino")
    shown = await here.post(title="Pronunciation drills")
    held = await here.post(title="Casino night vocabulary")
    assert held.state == pb.POST_STATE_HELD

    # Its author and moderators see it; another member, the feed and search do not.
    assert await here.state(held.id) == pb.POST_STATE_HELD
    assert await here.state(held.id, user="mo") == pb.POST_STATE_HELD
    await refused(here.state(held.id, user="al"), grpc.StatusCode.NOT_FOUND)
    assert await here.feed() == [shown.id]
    assert await here.found("vocabulary") == []
    assert await here.queue() == [held.id]
    assert await here.queue(pb.REVIEW_REASON_APPEALED) == []
    assert (await here.facts()).count("PostCreated") == 1
    # Nobody discusses it while held, not even its author.
    await refused(
        here.stub.AddComment(
            pb.AddCommentRequest(community_id=here.id, post_id=held.id, body="Me first"),
            metadata=here.auth("bo"),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "ContentHeld" in await here.facts()

    # Approving shows it (PostCreated, once); a second approval says why it does not apply.
    approved = await here.moderate(held.id, pb.MODERATION_ACTION_APPROVE)
    assert approved.status == pb.MODERATION_STATUS_VISIBLE
    assert await here.state(held.id, user="al") == pb.POST_STATE_PUBLISHED
    assert set(await here.feed()) == {shown.id, held.id}
    assert await here.found("vocabulary") == [held.id]
    assert await here.queue() == []
    again = await refused(
        here.moderate(held.id, pb.MODERATION_ACTION_APPROVE), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "only a held post is approved" in (again.details() or "")
    facts = await here.facts()
    assert facts.count("PostCreated") == 2
    assert facts.count("ContentApproved") == 1
    assert [(action, actor) for action, actor, _ in await here.log()] == [
        ("approve", "mo"),
        ("hold", ""),
    ]

    # A rule that blocks still refuses; a draft is held when published.
    await here.watch("scam", pb.KEYWORD_RULE_ACTION_BLOCK)
    with pytest.raises(grpc.aio.AioRpcError) as blocked:
        await here.post(title="A scam")
    assert "title" in field_violations(blocked.value)
    draft = await here.post(title="Casino words, later", draft=True)
    published = await here.stub.PublishPost(
        pb.PublishPostRequest(community_id=here.id, post_id=draft.id), metadata=here.auth("bo")
    )
    assert published.post.state == pb.POST_STATE_HELD
    assert await here.queue(pb.REVIEW_REASON_HELD) == [draft.id]


async def test_an_edit_matching_a_hold_rule_takes_a_post_back_into_review(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    await here.watch("代写")
    post = await here.post(title="Essay practice")
    await here.stub.UpdatePost(
        pb.UpdatePostRequest(
            community_id=here.id,
            post_id=post.id,
            post=pb.Post(body="找人代写作业"),
            update_mask=FieldMask(paths=["body"]),
        ),
        metadata=here.auth("bo"),
    )
    assert await here.state(post.id) == pb.POST_STATE_HELD
    assert await here.feed() == []
    assert await here.found("essay") == []
    facts = await here.facts()
    # To its consumers the post is gone, as a deleted one is.
    assert facts[-2:] == ["PostDeleted", "ContentHeld"]

    await here.moderate(post.id, pb.MODERATION_ACTION_APPROVE)
    facts = await here.facts()
    assert facts.count("PostCreated") == 1
    assert facts[-2:] == ["PostRestored", "ContentApproved"]
    assert await here.found("essay") == [post.id]


async def test_moderators_hide_restore_and_remove_with_reasons_checked_at_each_step(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    elsewhere = await Community(content).setup()
    post = await here.post(title="Flashcards for verbs")

    # Refused requests change nothing.
    missing = await refused(
        here.moderate(post.id, pb.MODERATION_ACTION_HIDE), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "reason" in field_violations(missing)
    await refused(
        here.moderate(post.id, pb.MODERATION_ACTION_HIDE, "x" * 1001),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await refused(
        here.moderate(post.id, pb.MODERATION_ACTION_HIDE, "spam", by="bo"),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # Another community's post is simply not there.
    await refused(
        elsewhere.moderate(post.id, pb.MODERATION_ACTION_HIDE, "spam"), grpc.StatusCode.NOT_FOUND
    )
    await refused(
        here.moderate(post.id, pb.MODERATION_ACTION_RESTORE, "why not"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert await here.feed() == [post.id]
    assert await here.log() == []

    hidden = await here.moderate(post.id, pb.MODERATION_ACTION_HIDE, "Off topic")
    assert (hidden.status, hidden.reason, hidden.actor_user_id) == (
        pb.MODERATION_STATUS_HIDDEN,
        "Off topic",
        "mo",
    )
    assert await here.feed() == []
    assert await here.found("flashcards") == []
    assert await here.state(post.id) == pb.POST_STATE_HIDDEN
    # Its author reads why, who and when.
    read = await here.stub.GetPost(
        pb.GetPostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("bo")
    )
    assert (read.post.moderation.reason, read.post.moderation.actor_user_id) == (
        "Off topic",
        "mo",
    )
    await refused(here.state(post.id, user="al"), grpc.StatusCode.NOT_FOUND)
    # The author cannot delete their way around it.
    await refused(
        here.stub.DeletePost(
            pb.DeletePostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("bo")
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    await here.moderate(post.id, pb.MODERATION_ACTION_RESTORE, "On topic after all")
    assert await here.feed() == [post.id]
    assert await here.found("flashcards") == [post.id]

    await here.moderate(post.id, pb.MODERATION_ACTION_REMOVE, "Plagiarised")
    gone = await refused(
        here.moderate(post.id, pb.MODERATION_ACTION_RESTORE, "Second thoughts"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "only when its author's appeal is overturned" in (gone.details() or "")
    assert await here.feed() == []
    assert await here.log() == [
        ("remove", "mo", "Plagiarised"),
        ("restore", "mo", "On topic after all"),
        ("hide", "mo", "Off topic"),
    ]
    facts = [fact for fact in await here.facts() if fact != "PostCreated"]
    assert facts == [
        "PostDeleted",
        "ContentHidden",
        "PostRestored",
        "ContentRestored",
        "PostDeleted",
        "ContentRemoved",
    ]


async def test_the_author_appeals_once_and_another_moderator_decides(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    removed = await here.post(title="My study notes")
    await here.moderate(removed.id, pb.MODERATION_ACTION_REMOVE, "Looks like spam")

    await refused(here.appeal(removed.id, "Mine", by="al"), grpc.StatusCode.NOT_FOUND)
    await refused(here.appeal(removed.id, ""), grpc.StatusCode.INVALID_ARGUMENT)
    case = await here.appeal(removed.id, "These are my own notes from class.")
    assert case.appeal_open
    assert case.appealed
    assert list(case.review_reasons) == [pb.REVIEW_REASON_APPEALED]
    assert await here.queue(pb.REVIEW_REASON_APPEALED) == [removed.id]
    twice = await refused(here.appeal(removed.id, "Please"), grpc.StatusCode.FAILED_PRECONDITION)
    assert "once per post" in (twice.details() or "")

    # While the appeal is open, only its decision applies, and not by the one who decided.
    await refused(
        here.moderate(removed.id, pb.MODERATION_ACTION_HIDE, "meanwhile", by="mo2"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await refused(
        here.moderate(removed.id, pb.MODERATION_ACTION_RESTORE, "I was wrong"),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    overturned = await here.moderate(
        removed.id, pb.MODERATION_ACTION_RESTORE, "Own notes", by="mo2"
    )
    assert overturned.status == pb.MODERATION_STATUS_VISIBLE
    assert not overturned.appeal_open
    assert await here.feed() == [removed.id]
    assert await here.queue() == []

    # An admin decided this one: a moderator ranks below them and may not decide its appeal.
    hidden = await here.post(title="Links I like")
    await here.moderate(hidden.id, pb.MODERATION_ACTION_HIDE, "Self-promotion", by="ad")
    appealed_hidden = await here.appeal(hidden.id, "They are free resources.")
    await refused(
        here.moderate(hidden.id, pb.MODERATION_ACTION_UPHOLD, "Stands", by="mo"),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    upheld = await here.stub.ModerateContent(
        pb.ModerateContentRequest(
            community_id=here.id,
            target_kind=POST,
            target_id=hidden.id,
            action=pb.MODERATION_ACTION_UPHOLD,
            reason="Stands",
        ),
        metadata=content.auth("root", operator=True),
    )
    assert upheld.case.status == pb.MODERATION_STATUS_HIDDEN
    assert upheld.case.version > appealed_hidden.version
    assert await here.feed() == [removed.id]

    log = await here.log()
    assert [action for action, _, _ in log] == [
        "uphold",
        "appeal",
        "hide",
        "overturn",
        "appeal",
        "remove",
    ]
    facts = await here.facts()
    assert facts.count("ModerationAppealed") == 2
    assert facts.count("AppealDecided") == 2
    decided = events.AppealDecided.DESCRIPTOR.full_name
    assert decided.endswith("AppealDecided")


async def test_members_reports_open_close_and_remove_once_in_any_order(
    content: RunningService,
) -> None:
    """The projection of members' ReportFiled and ReportResolved, applied as the consumer
    applies a batch: a redelivered or older fact changes nothing."""
    here = await Community(content).setup()
    first = await here.post(title="Essays for sale")
    second = await here.post(title="Homework for sale")

    def filed(report_id: str, post_id: str, kind: str = "post") -> members_events.ReportFiled:
        return members_events.ReportFiled(
            report_id=report_id,
            community_id=here.id,
            reporter_user_id="al",
            target_service="content",
            target_kind=kind,
            target_id=post_id,
            reason=members_pb.REPORT_REASON_SPAM,
            version=1,
        )

    def resolved(
        report_id: str, post_id: str, kind: str = "post", **fields: Any
    ) -> members_events.ReportResolved:
        values: dict[str, Any] = {
            "resolution": members_pb.RESOLUTION_WARN,
            "remove_content": True,
            "version": 2,
        }
        values.update(fields)
        return members_events.ReportResolved(
            report_id=report_id,
            community_id=here.id,
            resolver_user_id="mo",
            target_service="content",
            target_kind=kind,
            target_id=post_id,
            **values,
        )

    async def apply(*facts: Any) -> None:
        async with content.deps.database.write() as session:
            await consumers.apply(session, [(fact, cast(Any, None)) for fact in facts])

    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    await apply(filed(one, first.id), filed(one, first.id))
    assert await here.queue(pb.REVIEW_REASON_REPORTED) == [first.id]
    await apply(resolved(one, first.id), resolved(one, first.id), filed(one, first.id))
    assert await here.queue() == []
    assert await here.state(first.id) == pb.POST_STATE_REMOVED

    # Decided before its filing arrived: removed once, and the late filing opens nothing.
    await apply(resolved(two, second.id), filed(two, second.id))
    assert await here.state(second.id) == pb.POST_STATE_REMOVED
    assert await here.queue() == []

    # The appeal's overturn puts the post back; its redelivery changes nothing.
    overturn = resolved(
        one, first.id, resolution=members_pb.RESOLUTION_OVERTURN, appeal=True, version=4
    )
    await apply(overturn, overturn)
    assert await here.state(first.id, user="al") == pb.POST_STATE_PUBLISHED
    assert [action for action, _, _ in await here.log()] == ["restore", "remove", "remove"]
    facts = await here.facts()
    assert facts.count("ContentRemoved") == 2
    assert facts.count("ContentRestored") == 1

    # A report about a comment: in the queue, then the comment is removed from the thread.
    said = await here.stub.AddComment(
        pb.AddCommentRequest(community_id=here.id, post_id=first.id, body="Buy my essays"),
        metadata=here.auth("bo"),
    )
    three = str(uuid.uuid4())
    await apply(filed(three, said.comment.id, "comment"))
    queued = await here.stub.ListReviewQueue(
        pb.ListReviewQueueRequest(community_id=here.id), metadata=here.auth("mo")
    )
    assert [(c.target_kind, c.target_id, list(c.report_ids)) for c in queued.cases] == [
        (COMMENT, said.comment.id, [three])
    ]
    await apply(resolved(three, said.comment.id, "comment"))
    thread = await here.stub.ListComments(
        pb.ListCommentsRequest(community_id=here.id, post_id=first.id), metadata=here.auth("al")
    )
    assert list(thread.comments) == []
    assert await here.queue() == []


async def test_a_scheduled_draft_a_rule_holds_goes_into_review_when_due(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    await here.watch("casino")
    draft = await here.post(title="Casino vocabulary", draft=True)
    due = datetime.now(UTC) + timedelta(seconds=4)  # still ahead when a slow machine schedules
    await here.stub.SchedulePost(
        pb.SchedulePostRequest(
            community_id=here.id, post_id=draft.id, local_time=due.strftime("%Y-%m-%dT%H:%M:%S")
        ),
        metadata=here.auth("bo"),
    )

    async def held() -> bool:
        return bool(await here.state(draft.id) == pb.POST_STATE_HELD)

    await eventually(held, "the due draft is held")
    assert await here.queue(pb.REVIEW_REASON_HELD) == [draft.id]
    assert "PostCreated" not in await here.facts()


async def test_a_held_comment_waits_unseen_and_moderators_act_on_comments(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    await here.watch("casino")
    post = await here.post(title="Listening practice")

    async def comment(body: str) -> pb.Comment:
        reply: pb.AddCommentResponse = await here.stub.AddComment(
            pb.AddCommentRequest(community_id=here.id, post_id=post.id, body=body),
            metadata=here.auth("al"),
        )
        return reply.comment

    async def thread(user: str) -> list[str]:
        reply = await here.stub.ListComments(
            pb.ListCommentsRequest(community_id=here.id, post_id=post.id),
            metadata=here.auth(user),
        )
        return [item.id for item in reply.comments]

    async def counted() -> int:
        reply = await here.stub.GetPost(
            pb.GetPostRequest(community_id=here.id, post_id=post.id), metadata=here.auth("bo")
        )
        return int(reply.post.comment_count)

    async def on_comment(action: Any, reason: str = "", by: str = "mo") -> pb.ModerationCase:
        reply: pb.ModerateContentResponse = await here.stub.ModerateContent(
            pb.ModerateContentRequest(
                community_id=here.id,
                target_kind=COMMENT,
                target_id=held.id,
                action=action,
                reason=reason,
            ),
            metadata=here.auth(by),
        )
        return reply.case

    held = await comment("Casino night tonight? Great for listening")
    assert held.moderation_status == pb.MODERATION_STATUS_HELD
    assert await thread("al") == [held.id]
    assert await thread("mo") == [held.id]
    assert await thread("bo") == []
    assert await counted() == 0
    assert await here.found("tonight") == []
    assert "CommentAdded" not in await here.facts()
    assert await here.queue(pb.REVIEW_REASON_HELD) == [held.id]
    # An edit to a phrase that holds is refused: a comment is held only when written.
    await refused(
        here.stub.UpdateComment(
            pb.UpdateCommentRequest(community_id=here.id, comment_id=held.id, body="casino!"),
            metadata=here.auth("al"),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    approved = await on_comment(pb.MODERATION_ACTION_APPROVE)
    assert approved.target_kind == COMMENT
    assert await thread("bo") == [held.id]
    assert await counted() == 1
    assert await here.found("tonight") == [post.id]

    await on_comment(pb.MODERATION_ACTION_HIDE, "Off topic")
    assert await thread("bo") == []
    assert await counted() == 0
    assert await here.found("tonight") == []
    reply = await here.stub.AppealModeration(
        pb.AppealModerationRequest(
            community_id=here.id, target_kind=COMMENT, target_id=held.id, statement="On topic."
        ),
        metadata=here.auth("al"),
    )
    assert reply.case.appeal_open
    await refused(
        on_comment(pb.MODERATION_ACTION_RESTORE, "Fine"), grpc.StatusCode.PERMISSION_DENIED
    )
    await on_comment(pb.MODERATION_ACTION_RESTORE, "Fine", by="mo2")
    assert await thread("bo") == [held.id]
    assert await counted() == 1

    facts = await here.facts()
    assert facts.count("CommentAdded") == 1  # once, when first shown
    assert [action for action, _, _ in await here.log()] == [
        "overturn",
        "appeal",
        "hide",
        "approve",
        "hold",
    ]
