"""The pure rules of discussion: comments with one level of replies, answers to questions,
edits by their author alone, deletion that keeps a comment's place, and accepting one
answer at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.content.discussion import domain
from services.content.discussion.domain import BODY_MAX, Comment
from services.content.posts.domain import Post, PostKind, PostState, new_post
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
COMMUNITY = "0b4c0f43-8a2c-4d61-9d0e-3f1b8a7c2e10"


def question(**changes: object) -> Post:
    made = new_post(
        community_id=COMMUNITY,
        author_user_id="asker",
        kind=PostKind.QUESTION,
        title="Why does my borrow outlive the loop?",
        body="Minimal example inside.",
        now=NOW,
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def article() -> Post:
    return new_post(
        community_id=COMMUNITY,
        author_user_id="writer",
        kind=PostKind.ARTICLE,
        title="Spaced repetition, week one",
        body="Review at 1, 3 and 7 days.",
        now=NOW,
    )


def comment_on(post: Post, author: str = "ada", parent: Comment | None = None) -> Comment:
    return domain.new_comment(
        post=post, author_user_id=author, body="Try cloning it first.  \n", parent=parent, now=NOW
    )


def field_of(error: InvalidArgument) -> list[str]:
    return [violation.field for violation in error.violations]


def test_a_top_level_comment_on_a_question_is_an_answer_and_its_replies_are_not() -> None:
    asked = question()
    answer = comment_on(asked)
    reply = comment_on(asked, "bo", parent=answer)
    assert answer.is_answer
    assert answer.top_level
    assert not reply.is_answer
    assert reply.parent_id == answer.id
    assert answer.body == "Try cloning it first."
    assert (answer.version, answer.etag) == (1, "v1")
    assert not comment_on(article()).is_answer


def test_a_reply_to_a_reply_is_refused_naming_the_parent() -> None:
    post = article()
    top = comment_on(post)
    reply = comment_on(post, "bo", parent=top)
    with pytest.raises(InvalidArgument) as refused:
        comment_on(post, "cy", parent=reply)
    assert field_of(refused.value) == ["parent_comment_id"]
    assert top.id in refused.value.message


def test_a_parent_must_be_of_the_same_post_and_not_deleted() -> None:
    elsewhere = comment_on(article())
    with pytest.raises(InvalidArgument) as refused:
        comment_on(question(), parent=elsewhere)
    assert field_of(refused.value) == ["parent_comment_id"]
    post = article()
    gone = domain.delete(comment_on(post), "ada", NOW)
    with pytest.raises(FailedPrecondition):
        comment_on(post, "bo", parent=gone)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "is required"),
        ("   \n\t", "is required"),
        ("x" * (BODY_MAX + 1), f"must be at most {BODY_MAX} characters (got {BODY_MAX + 1})"),
    ],
)
def test_a_body_is_one_to_ten_thousand_characters(body: str, problem: str) -> None:
    assert domain.body_problem(body) == problem
    with pytest.raises(InvalidArgument) as refused:
        domain.new_comment(post=article(), author_user_id="ada", body=body, parent=None, now=NOW)
    assert field_of(refused.value) == ["body"]


def test_trailing_whitespace_does_not_count_toward_the_limit() -> None:
    assert domain.body_problem("x" * BODY_MAX + "   \n") is None
    assert domain.body_problem("    indented code") is None


def test_only_its_author_edits_a_comment_and_an_operator_may() -> None:
    comment = comment_on(article())
    later = NOW + timedelta(minutes=5)
    with pytest.raises(PermissionDenied) as refused:
        domain.edit(comment, "moderator", "Better words", "", later)
    assert refused.value.message == f"only its author may edit comment {comment.id}"
    edited = domain.edit(comment, "ada", "Better words ", "v1", later)
    assert (edited.body, edited.version, edited.etag, edited.updated_at) == (
        "Better words",
        2,
        "v2",
        later,
    )
    fixed = domain.edit(edited, "root", "Fixed by support", "", later, operator=True)
    assert fixed.version == 3


def test_a_stale_etag_is_refused_and_the_same_body_changes_nothing() -> None:
    comment = domain.edit(comment_on(article()), "ada", "Second thoughts", "", NOW)
    with pytest.raises(FailedPrecondition) as refused:
        domain.edit(comment, "ada", "Third thoughts", "v1", NOW)
    assert "etag v1, now v2" in refused.value.message
    assert domain.edit(comment, "ada", "Second thoughts  ", "v2", NOW) is comment


def test_a_deleted_comment_keeps_its_place_without_its_body_and_cannot_be_edited() -> None:
    comment = comment_on(question())
    deleted = domain.delete(comment, "moderator", NOW)
    assert (deleted.body, deleted.deleted_by, deleted.deleted_at, deleted.version) == (
        "",
        "moderator",
        NOW,
        2,
    )
    assert deleted.is_answer
    assert deleted.id == comment.id
    with pytest.raises(FailedPrecondition):
        domain.edit(deleted, "ada", "Back again", "", NOW)
    with pytest.raises(FailedPrecondition):
        domain.delete(deleted, "ada", NOW)


def test_a_post_hidden_from_the_caller_is_not_found_and_only_a_published_one_is_open() -> None:
    draft = question(state=PostState.DRAFT, published_at=None)
    with pytest.raises(NotFound) as missing:
        domain.seen(draft, draft.id, COMMUNITY, "ada", moderator=True)
    assert missing.value.message == f"post {draft.id} not found in community {COMMUNITY}"
    with pytest.raises(NotFound):
        domain.seen(None, draft.id, COMMUNITY, "ada", moderator=False)
    mine = domain.seen(draft, draft.id, COMMUNITY, "asker", moderator=False)
    with pytest.raises(FailedPrecondition, match="draft"):
        domain.open_for_discussion(mine)
    deleted = question(state=PostState.DELETED)
    with pytest.raises(NotFound):
        domain.seen(deleted, deleted.id, COMMUNITY, "ada", moderator=False)
    seen = domain.seen(deleted, deleted.id, COMMUNITY, "ada", moderator=True)
    with pytest.raises(FailedPrecondition, match="deleted"):
        domain.open_for_discussion(seen)
    assert domain.open_for_discussion(question()).state is PostState.PUBLISHED


def test_moderators_and_operators_moderate() -> None:
    assert not domain.moderates(None, False)
    assert not domain.moderates(1, False)
    assert domain.moderates(2, False)
    assert domain.moderates(4, False)
    assert domain.moderates(None, True)


def test_accepting_raises_the_version_once_per_acceptance_begun_or_ended() -> None:
    asked = question()
    first, second = comment_on(asked), comment_on(asked, "bo")
    accepted, previous = domain.accept(asked, first)
    assert (accepted.accepted_answer_id, accepted.version, previous) == (first.id, 2, None)
    again, previous = domain.accept(accepted, first)
    assert again is accepted
    assert previous is None
    switched, previous = domain.accept(accepted, second)
    assert (switched.accepted_answer_id, switched.version, previous) == (second.id, 4, first.id)
    withdrawn = domain.unaccept(switched)
    assert (withdrawn.accepted_answer_id, withdrawn.version) == (None, 5)
    with pytest.raises(FailedPrecondition, match="no accepted answer"):
        domain.unaccept(withdrawn)


def test_only_a_live_top_level_comment_of_a_published_question_can_be_accepted() -> None:
    asked = question()
    answer = comment_on(asked)
    with pytest.raises(FailedPrecondition, match="not a question"):
        domain.accept(article(), comment_on(article()))
    with pytest.raises(FailedPrecondition, match="deleted"):
        domain.accept(replace(asked, state=PostState.DELETED), answer)
    with pytest.raises(InvalidArgument) as refused:
        domain.accept(asked, comment_on(asked, "bo", parent=answer))
    assert field_of(refused.value) == ["answer_id"]
    with pytest.raises(InvalidArgument):
        domain.accept(asked, comment_on(question()))
    with pytest.raises(FailedPrecondition, match="deleted"):
        domain.accept(asked, domain.delete(answer, "ada", NOW))
    with pytest.raises(FailedPrecondition, match="not a question"):
        domain.unaccept(article())


def test_reaction_kinds_match_the_contract() -> None:
    from studyhall.content.v1 import content_service_pb2 as pb

    defined = {value.number for value in pb.ReactionKind.DESCRIPTOR.values if value.number}
    assert {int(kind) for kind in domain.ReactionKind} == defined
