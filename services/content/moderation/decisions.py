"""Moderation of posts: held, hidden, removed, restored, appealed. Rules only, no I/O.

A post's moderation status is its state (services/content/posts/domain.py: HELD, HIDDEN,
REMOVED; PUBLISHED is visible), so every feed, search and count that shows published posts
leaves the others out without knowing of moderation. The case keeps the last decision (who,
why, when, the decider's rank), the one appeal, and since when the post waits for review
(docs/decisions/0052).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum, StrEnum

from services.content.discussion.domain import Comment
from services.content.posts.domain import Post, PostState, post_not_found
from services.kit.errors import FailedPrecondition, PermissionDenied

POST = "post"
COMMENT = "comment"
REASON_MAX = 1000
STATEMENT_MAX = 2000
# An operator outranks every role of a community (kit Role: 1 member .. 4 owner).
OPERATOR_RANK = 5


class Status(StrEnum):
    VISIBLE = "visible"
    HELD = "held"
    HIDDEN = "hidden"
    REMOVED = "removed"


class Action(IntEnum):
    # Same numbers as studyhall.content.v1.ModerationAction.
    APPROVE = 1
    HIDE = 2
    REMOVE = 3
    RESTORE = 4
    UPHOLD = 5


# The actions that must say why.
NEEDS_REASON = frozenset({Action.HIDE, Action.REMOVE, Action.RESTORE, Action.UPHOLD})

_STATE = {
    Status.VISIBLE: PostState.PUBLISHED,
    Status.HELD: PostState.HELD,
    Status.HIDDEN: PostState.HIDDEN,
    Status.REMOVED: PostState.REMOVED,
}
_STATUS = {state: status for status, state in _STATE.items()}


@dataclass(frozen=True)
class Case:
    target_kind: str
    target_id: str
    community_id: str
    author_user_id: str
    status: Status
    reason: str
    actor_user_id: str  # empty for a keyword rule's hold
    actor_rank: int  # the decider's role then; 0 for a rule
    decided_at: datetime
    version: int
    appealed: bool = False
    appeal_open: bool = False
    appeal_statement: str = ""
    appealed_at: datetime | None = None
    queued_at: datetime | None = None  # in the review queue since; None when not
    open_reports: int = 0  # members' reports about it still open


@dataclass(frozen=True)
class Decision:
    post: Post
    case: Case
    # The log's word for it: approve, hide, remove, restore, uphold, overturn.
    step: str
    # The post became visible for the first time (PostCreated, not PostRestored).
    first_shown: bool = False


@dataclass(frozen=True)
class CommentDecision:
    comment: Comment
    case: Case
    step: str
    # Shown for the first time (CommentAdded).
    first_shown: bool = False


def status_of(post: Post) -> Status:
    return _STATUS[post.state]


def held(post: Post, case: Case | None, reason: str, now: datetime) -> Case:
    """The case of a post a keyword rule held (the post is already HELD)."""
    return _hold(case or new_case(post, now), reason, post.version, now)


def held_comment(comment: Comment, case: Case | None, reason: str, now: datetime) -> Case:
    """The case of a comment a keyword rule held (the comment is already held)."""
    return _hold(case or new_comment_case(comment, now), reason, comment.version, now)


def _hold(base: Case, reason: str, version: int, now: datetime) -> Case:
    return replace(
        base,
        status=Status.HELD,
        reason=reason,
        actor_user_id="",
        actor_rank=0,
        decided_at=now,
        version=version,
        queued_at=base.queued_at or now,
    )


def decide(
    post: Post,
    case: Case | None,
    action: Action,
    actor: str,
    rank: int,
    reason: str,
    now: datetime,
) -> Decision:
    """A moderator's action on a post, checked against where it stands."""
    if post.state is PostState.DRAFT:
        # A moderator never sees another member's drafts.
        raise post_not_found(post.id, post.community_id)
    if post.state is PostState.DELETED:
        raise FailedPrecondition(
            f"post {post.id} is deleted; restore it first (RestorePost), then moderate it"
        )
    current = case or new_case(post, now)
    decided, step = _next(POST, post.id, status_of(post), current, action, actor, rank, reason, now)
    return _apply(post, decided, step, now)


def decide_comment(
    comment: Comment,
    case: Case | None,
    action: Action,
    actor: str,
    rank: int,
    reason: str,
    now: datetime,
) -> CommentDecision:
    """A moderator's action on a comment, checked against where it stands."""
    if comment.deleted:
        raise FailedPrecondition(f"comment {comment.id} is deleted; there is nothing to moderate")
    current = case or new_comment_case(comment, now)
    status = Status(comment.moderation)
    decided, step = _next(COMMENT, comment.id, status, current, action, actor, rank, reason, now)
    return _apply_comment(comment, decided, step)


def _apply_comment(comment: Comment, case: Case, step: str) -> CommentDecision:
    visible = case.status is Status.VISIBLE
    moved = replace(
        comment,
        moderation=case.status.value,
        shown=comment.shown or visible,
        version=comment.version + 1,
    )
    first = visible and not comment.shown
    return CommentDecision(moved, replace(case, version=moved.version), step, first)


def _next(
    kind: str,
    target_id: str,
    status: Status,
    current: Case,
    action: Action,
    actor: str,
    rank: int,
    reason: str,
    now: datetime,
) -> tuple[Case, str]:
    """The case after `action`, and the log's word for it."""
    what = f"{kind} {target_id}"
    if current.appeal_open:
        return _decide_appeal(what, current, action, actor, rank, reason, now)
    target = _target(kind, what, status, action)
    decided = replace(
        current,
        status=target,
        reason=reason,
        actor_user_id=actor,
        actor_rank=rank,
        decided_at=now,
        # Open reports keep it in the queue: members' moderators decide them.
        queued_at=current.queued_at if current.open_reports else None,
    )
    return decided, action.name.lower()


def appeal(
    post: Post,
    case: Case | None,
    caller: str,
    statement: str,
    now: datetime,
    *,
    operator: bool = False,
) -> Case:
    """The author's one appeal of the hold, hiding or removal of their post (an operator
    may file it for them)."""
    if post.state is PostState.DRAFT:
        raise post_not_found(post.id, post.community_id)
    status = status_of(post) if post.state in _STATUS else None
    return _appeal(
        POST, post.id, post.author_user_id, status, case, caller, statement, now, operator
    )


def appeal_comment(
    comment: Comment,
    case: Case | None,
    caller: str,
    statement: str,
    now: datetime,
    *,
    operator: bool = False,
) -> Case:
    """The author's one appeal of the hold, hiding or removal of their comment."""
    status = None if comment.deleted else Status(comment.moderation)
    return _appeal(
        COMMENT, comment.id, comment.author_user_id, status, case, caller, statement, now, operator
    )


def _appeal(
    kind: str,
    target_id: str,
    author: str,
    status: Status | None,
    case: Case | None,
    caller: str,
    statement: str,
    now: datetime,
    operator: bool,
) -> Case:
    if author != caller and not operator:
        raise PermissionDenied(f"only its author may appeal the moderation of {kind} {target_id}")
    if status not in (Status.HELD, Status.HIDDEN, Status.REMOVED) or case is None:
        raise FailedPrecondition(
            f"{kind} {target_id} is not held, hidden or removed; there is nothing to appeal"
        )
    if case.appealed:
        raise FailedPrecondition(
            f"{kind} {target_id} was appealed already; an appeal is allowed once per {kind}"
        )
    return replace(
        case,
        appealed=True,
        appeal_open=True,
        appeal_statement=statement,
        appealed_at=now,
        queued_at=case.queued_at or now,
    )


def _decide_appeal(
    what: str, case: Case, action: Action, actor: str, rank: int, reason: str, now: datetime
) -> tuple[Case, str]:
    if action not in (Action.RESTORE, Action.UPHOLD):
        raise FailedPrecondition(
            f"{what} has an open appeal; decide it first with RESTORE (overturn) or UPHOLD"
        )
    if case.actor_user_id and actor == case.actor_user_id:
        raise PermissionDenied(
            f"you made the decision the author of {what} appealed; another moderator "
            "decides the appeal"
        )
    if rank < case.actor_rank:
        raise PermissionDenied(
            f"the appeal of {what} is decided by a moderator ranking at least as high "
            "as the one who decided"
        )
    closed = replace(
        case, appeal_open=False, queued_at=case.queued_at if case.open_reports else None
    )
    if action is Action.UPHOLD:
        # The decision stands (a held item stays held and may still be approved); the
        # version moves on, so AppealDecided is newer than the decision it upholds.
        return closed, "uphold"
    restored = replace(
        closed,
        status=Status.VISIBLE,
        reason=reason,
        actor_user_id=actor,
        actor_rank=rank,
        decided_at=now,
    )
    return restored, "overturn"


def report_removes(
    post: Post, case: Case | None, report_id: str, resolver: str, now: datetime
) -> Decision | None:
    """Members decided a report with removal: the post is removed (None when it is not
    there to remove: a draft, deleted, already removed)."""
    if post.state not in _STATUS or post.state is PostState.REMOVED:
        return None
    return _apply(
        post, _report_removal(case or new_case(post, now), report_id, resolver, now), "remove", now
    )


def report_overturned(
    post: Post, case: Case | None, report_id: str, resolver: str, now: datetime
) -> Decision | None:
    """Members overturned on appeal a report's decision that removed the post: it comes
    back, unless something else removed it since (None then)."""
    if post.state is not PostState.REMOVED or not _removed_by(case, report_id):
        return None
    assert case is not None
    return _apply(post, _report_overturn(case, report_id, resolver, now), "restore", now)


def report_removes_comment(
    comment: Comment, case: Case | None, report_id: str, resolver: str, now: datetime
) -> CommentDecision | None:
    """As `report_removes`, for a comment."""
    if comment.deleted or comment.moderation == Status.REMOVED.value:
        return None
    current = case or new_comment_case(comment, now)
    return _apply_comment(comment, _report_removal(current, report_id, resolver, now), "remove")


def report_overturned_comment(
    comment: Comment, case: Case | None, report_id: str, resolver: str, now: datetime
) -> CommentDecision | None:
    """As `report_overturned`, for a comment."""
    if comment.moderation != Status.REMOVED.value or not _removed_by(case, report_id):
        return None
    assert case is not None
    return _apply_comment(comment, _report_overturn(case, report_id, resolver, now), "restore")


def _removed_by(case: Case | None, report_id: str) -> bool:
    return case is not None and case.reason == f"report {report_id}"


def _report_removal(current: Case, report_id: str, resolver: str, now: datetime) -> Case:
    return replace(
        current,
        status=Status.REMOVED,
        reason=f"report {report_id}",
        actor_user_id=resolver,
        actor_rank=0,
        decided_at=now,
    )


def _report_overturn(case: Case, report_id: str, resolver: str, now: datetime) -> Case:
    return replace(
        case,
        status=Status.VISIBLE,
        reason=f"report {report_id} overturned on appeal",
        actor_user_id=resolver,
        actor_rank=0,
        decided_at=now,
        appeal_open=False,
        queued_at=case.queued_at if case.open_reports else None,
    )


def _target(kind: str, what: str, status: Status, action: Action) -> Status:
    """Where `action` takes an item at `status`, or why it does not apply."""
    if action is Action.APPROVE:
        if status is Status.HELD:
            return Status.VISIBLE
        raise FailedPrecondition(
            f"{what} is {status}; only a held {kind} is approved"
            + (" (RESTORE brings back a hidden one)" if status is Status.HIDDEN else "")
        )
    if action is Action.HIDE:
        if status in (Status.VISIBLE, Status.HELD):
            return Status.HIDDEN
        if status is Status.HIDDEN:
            raise FailedPrecondition(f"{what} is already hidden")
        raise FailedPrecondition(f"{what} is removed; it comes back only on appeal")
    if action is Action.REMOVE:
        if status is Status.REMOVED:
            raise FailedPrecondition(f"{what} is already removed")
        return Status.REMOVED
    if action is Action.RESTORE:
        if status is Status.HIDDEN:
            return Status.VISIBLE
        if status is Status.HELD:
            raise FailedPrecondition(f"{what} is held; APPROVE it to show it")
        if status is Status.REMOVED:
            raise FailedPrecondition(
                f"{what} is removed; it comes back only when its author's appeal is overturned"
            )
        raise FailedPrecondition(f"{what} is visible; there is nothing to restore")
    raise FailedPrecondition(f"{what} has no open appeal to uphold")


def _apply(post: Post, case: Case, step: str, now: datetime) -> Decision:
    state = _STATE[case.status]
    first = state is PostState.PUBLISHED and post.published_at is None
    moved = replace(
        post,
        state=state,
        published_at=now if first else post.published_at,
        pinned_at=post.pinned_at if state is PostState.PUBLISHED else None,
        version=post.version + 1,
    )
    return Decision(moved, replace(case, version=moved.version), step, first_shown=first)


def new_case(post: Post, now: datetime) -> Case:
    return Case(
        target_kind=POST,
        target_id=post.id,
        community_id=post.community_id,
        author_user_id=post.author_user_id,
        status=status_of(post) if post.state in _STATUS else Status.VISIBLE,
        reason="",
        actor_user_id="",
        actor_rank=0,
        decided_at=now,
        version=post.version,
    )


def new_comment_case(comment: Comment, now: datetime) -> Case:
    return Case(
        target_kind=COMMENT,
        target_id=comment.id,
        community_id=comment.community_id,
        author_user_id=comment.author_user_id,
        status=Status(comment.moderation),
        reason="",
        actor_user_id="",
        actor_rank=0,
        decided_at=now,
        version=comment.version,
    )
