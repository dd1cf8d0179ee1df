"""Discussion of posts: comments with one level of replies, reactions, and questions with an
accepted answer. Rules only, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum

from services.content.posts.domain import MODERATED, Post, PostKind, PostState, post_not_found
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

BODY_MAX = 10_000
# A comment's moderation status that the community sees.
VISIBLE = "visible"
# studyhall.members.v1.Role.ROLE_MODERATOR: moderators and above see deleted posts.
MODERATOR_ROLE = 2


class ReactionKind(IntEnum):
    LIKE = 1
    HELPFUL = 2
    INSIGHTFUL = 3
    THANKS = 4
    CELEBRATE = 5


@dataclass(frozen=True)
class Comment:
    id: str
    community_id: str
    post_id: str
    # The top-level comment this replies to; None for a top-level comment.
    parent_id: str | None
    # Empty once its author erased their data.
    author_user_id: str
    # Empty once deleted.
    body: str
    # A top-level comment on a question.
    is_answer: bool
    created_at: datetime
    version: int = 1
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    # Moderation (decision 0055): "visible", "held", "hidden" or "removed"; and whether its
    # CommentAdded was published (a held comment's is, once approved).
    moderation: str = VISIBLE
    shown: bool = True

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def visible(self) -> bool:
        """Whether the community sees it (deleted ones keep their place, empty)."""
        return self.moderation == VISIBLE

    def visible_to(self, user_id: str, moderator: bool) -> bool:
        """A held, hidden or removed comment is its author's and moderators'."""
        return self.visible or moderator or (bool(user_id) and user_id == self.author_user_id)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def top_level(self) -> bool:
        return self.parent_id is None


def moderates(role: int | None, operator: bool) -> bool:
    """Whether a caller of `role` sees what moderators see (operators do)."""
    return operator or (role is not None and role >= MODERATOR_ROLE)


def body_problem(body: str) -> str | None:
    """What is wrong with a comment's body, as a field violation's description; None if
    nothing. Trailing whitespace does not count."""
    kept = body.rstrip()
    if not kept.strip():
        return "is required"
    if len(kept) > BODY_MAX:
        return f"must be at most {BODY_MAX} characters (got {len(kept)})"
    return None


def comment_not_found(comment_id: str, community_id: str) -> NotFound:
    return NotFound(f"comment {comment_id} not found in community {community_id}")


def seen(post: Post | None, post_id: str, community_id: str, user_id: str, moderator: bool) -> Post:
    """The post, when the caller may see it: a draft is its author's alone and a deleted
    post its author's and moderators'; for anyone else it is as if it did not exist."""
    if post is None or not post.visible_to(user_id, moderator):
        raise post_not_found(post_id, community_id)
    return post


def open_for_discussion(post: Post) -> Post:
    """Only a published post takes comments and reactions (the caller sees it: `seen`)."""
    if post.state is PostState.DRAFT:
        raise FailedPrecondition(
            f"post {post.id} is a draft: publish it before it takes comments or reactions"
        )
    if post.state is PostState.DELETED:
        raise FailedPrecondition(
            f"post {post.id} is deleted: it takes no comments or reactions until restored"
        )
    if post.state in MODERATED:
        raise FailedPrecondition(
            f"post {post.id} is {post.state.name.lower()} by moderation: it takes no comments "
            "or reactions until a moderator shows it"
        )
    return post


def check_thread(parent: Comment, post_id: str) -> None:
    """That `parent` heads a thread of the post: one of its top-level comments."""
    if parent.post_id != post_id:
        raise InvalidArgument.field(
            "parent_comment_id", f"must be a comment of post {post_id}; {parent.id} is not"
        )
    if not parent.top_level:
        raise InvalidArgument.field(
            "parent_comment_id",
            f"comment {parent.id} is a reply: use its top-level comment {parent.parent_id} "
            "(one level of threading)",
        )


def new_comment(
    *,
    post: Post,
    author_user_id: str,
    body: str,
    parent: Comment | None,
    now: datetime,
    held: bool = False,
) -> Comment:
    """A comment on `post` (a published one), or a reply to `parent`, one of its top-level
    comments. A top-level comment on a question is an answer."""
    problem = body_problem(body)
    if problem:
        raise InvalidArgument.field("body", problem)
    if parent is not None:
        check_thread(parent, post.id)
        if parent.deleted:
            raise FailedPrecondition(f"comment {parent.id} is deleted: it takes no replies")
        if not parent.visible:
            raise FailedPrecondition(
                f"comment {parent.id} is {parent.moderation} by moderation: it takes no replies"
            )
    return Comment(
        id=str(uuid.uuid4()),
        community_id=post.community_id,
        post_id=post.id,
        parent_id=parent.id if parent is not None else None,
        author_user_id=author_user_id,
        # Leading indentation can be markup (a code block), so only the end is trimmed.
        body=body.rstrip(),
        is_answer=parent is None and post.kind is PostKind.QUESTION,
        created_at=now,
        # Held for review: shown (CommentAdded) when a moderator approves it.
        moderation="held" if held else VISIBLE,
        shown=not held,
    )


def edit(
    comment: Comment, editor: str, body: str, etag: str, now: datetime, *, operator: bool = False
) -> Comment:
    """The comment with its new body. Its author's alone (and operators'): not even a
    moderator rewrites someone's words. The same body again changes nothing."""
    if editor != comment.author_user_id and not operator:
        raise PermissionDenied(f"only its author may edit comment {comment.id}")
    if comment.deleted:
        raise FailedPrecondition(f"comment {comment.id} is deleted; it cannot be edited")
    if comment.moderation == "removed":
        raise FailedPrecondition(
            f"comment {comment.id} was removed by a moderator; appeal the removal "
            "(AppealModeration)"
        )
    if etag and etag != comment.etag:
        raise FailedPrecondition(
            f"comment {comment.id} changed since you read it (etag {etag}, now {comment.etag}); "
            "read it again and reapply your change"
        )
    problem = body_problem(body)
    if problem:
        raise InvalidArgument.field("body", problem)
    if body.rstrip() == comment.body:
        return comment
    return replace(comment, body=body.rstrip(), updated_at=now, version=comment.version + 1)


def delete(comment: Comment, by: str, now: datetime) -> Comment:
    """The comment without its body: it keeps its place in the thread (and its replies).
    Whether `by` may delete it is decided before (its author, or a moderator)."""
    if comment.deleted:
        raise FailedPrecondition(f"comment {comment.id} is already deleted")
    if not comment.visible:
        raise FailedPrecondition(
            f"comment {comment.id} is {comment.moderation} by moderation; a moderator decides "
            "it (its author may appeal with AppealModeration)"
        )
    return replace(comment, body="", deleted_at=now, deleted_by=by, version=comment.version + 1)


def answerable(question: Post, answer: Comment) -> None:
    """That `answer` may be accepted as the answer to `question`."""
    if question.kind is not PostKind.QUESTION:
        raise FailedPrecondition(
            f"post {question.id} is not a question; only questions have answers"
        )
    if question.state is not PostState.PUBLISHED:
        raise FailedPrecondition(
            f"question {question.id} is {question.state.name.lower()}; only a published "
            "question's answer can be accepted"
        )
    if answer.post_id != question.id or not answer.top_level:
        raise InvalidArgument.field(
            "answer_id", f"must be a top-level comment of question {question.id}"
        )
    if answer.deleted:
        raise FailedPrecondition(f"answer {answer.id} is deleted; it cannot be accepted")
    if not answer.visible:
        raise FailedPrecondition(
            f"answer {answer.id} is {answer.moderation} by moderation; it cannot be accepted"
        )


def accept(question: Post, answer: Comment) -> tuple[Post, str | None]:
    """The question with `answer` accepted (raising its version once for the previous
    answer's unacceptance, if any, and once for the acceptance), and the answer that was
    accepted before it. Accepting the accepted answer again changes nothing."""
    answerable(question, answer)
    previous = question.accepted_answer_id
    if previous == answer.id:
        return question, None
    bumps = 2 if previous else 1
    return replace(
        question, accepted_answer_id=answer.id, version=question.version + bumps
    ), previous


def unaccept(question: Post) -> Post:
    """The question without its accepted answer."""
    if question.kind is not PostKind.QUESTION:
        raise FailedPrecondition(
            f"post {question.id} is not a question; only questions have answers"
        )
    if question.accepted_answer_id is None:
        raise FailedPrecondition(f"question {question.id} has no accepted answer")
    return replace(question, accepted_answer_id=None, version=question.version + 1)
