"""`studyhall review`: content's moderation of posts. The review queue, a moderator's
approve / hide / remove / restore / uphold, the author's appeal, and the moderation log
(docs/decisions/0052)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from google.protobuf.message import Message
from rich.markup import escape
from rich.table import Table

from services.cli.common import (
    AsJson,
    AsUser,
    RequestId,
    call,
    enum_option,
    metadata,
    out,
    show,
    stub,
)
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc

review_app = typer.Typer(
    help="Moderation of posts: the review queue, decisions, appeals and the log.",
    no_args_is_help=True,
)

PageSize = Annotated[int, typer.Option(help="How many per page (at most 100; 0: the default).")]
PageToken = Annotated[str, typer.Option(help="The next page token a previous page printed.")]
OnComment = Annotated[bool, typer.Option("--comment", help="The id names a comment, not a post.")]
Reason = Annotated[
    str, typer.Option("--reason", help="Why (required but for approve; at most 1000 characters).")
]


def _when(record: Message, field: str) -> str:
    return getattr(record, field).ToJsonString()[:19] if record.HasField(field) else ""


def _next_page(token: str) -> None:
    if token:
        out.print(f"next page: --page-token {token}")


@review_app.command("queue")
def review_queue(
    community_id: str,
    reason: Annotated[
        str, typer.Option(help="Only items waiting for this: held, appealed or reported.")
    ] = "",
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """What waits for a moderator, oldest first (moderators)."""
    wanted = enum_option(pb.ReviewReason, "REVIEW_REASON_", reason) if reason else 0
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ListReviewQueue,
            pb.ListReviewQueueRequest(
                community_id=community_id,
                reason=pb.ReviewReason.ValueType(wanted),
                page_size=page_size,
                page_token=page_token,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "queue")
        return
    table = Table(title=f"review queue ({len(reply.cases)})")
    for column in ("kind", "id", "status", "why", "reason", "author", "waiting since"):
        table.add_column(column)
    for case in reply.cases:
        why = ", ".join(
            pb.ReviewReason.Name(item).removeprefix("REVIEW_REASON_").lower()
            for item in case.review_reasons
        )
        table.add_row(
            pb.ModerationTargetKind.Name(case.target_kind)
            .removeprefix("MODERATION_TARGET_KIND_")
            .lower(),
            case.target_id,
            pb.ModerationStatus.Name(case.status).removeprefix("MODERATION_STATUS_").lower(),
            why,
            escape(case.reason),
            case.author_user_id,
            _when(case, "queue_time"),
        )
    out.print(table)
    _next_page(reply.next_page_token)


def _kind(on_comment: bool) -> pb.ModerationTargetKind.ValueType:
    return pb.MODERATION_TARGET_KIND_COMMENT if on_comment else pb.MODERATION_TARGET_KIND_POST


def _moderate(
    action: int,
    community_id: str,
    post_id: str,
    reason: str,
    request_id: str,
    as_user: str | None,
    as_json: bool,
    on_comment: bool = False,
) -> None:
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ModerateContent,
            pb.ModerateContentRequest(
                request_id=request_id or str(uuid.uuid4()),
                community_id=community_id,
                target_kind=_kind(on_comment),
                target_id=post_id,
                action=pb.ModerationAction.ValueType(action),
                reason=reason,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.case, True, "case")
        return
    status = pb.ModerationStatus.Name(reply.case.status).removeprefix("MODERATION_STATUS_")
    typer.echo(f"{post_id} {status.lower()}")


def _action(name: str, action: int, doc: str) -> None:
    """`studyhall review <name>`: one moderator action, the same options for each."""

    def command(
        community_id: str,
        post_id: str,
        reason: Reason = "",
        on_comment: OnComment = False,
        request_id: RequestId = "",
        as_user: AsUser = None,
        as_json: AsJson = False,
    ) -> None:
        _moderate(action, community_id, post_id, reason, request_id, as_user, as_json, on_comment)

    command.__doc__ = doc
    review_app.command(name)(command)


_action(
    "approve",
    pb.MODERATION_ACTION_APPROVE,
    "Show a held post (or comment, with --comment) (moderators).",
)
_action("hide", pb.MODERATION_ACTION_HIDE, "Hide a post; moderators may restore it (moderators).")
_action(
    "remove",
    pb.MODERATION_ACTION_REMOVE,
    "Remove a post: back only when its author's appeal is overturned (moderators).",
)
_action(
    "restore",
    pb.MODERATION_ACTION_RESTORE,
    "Restore a hidden post, or overturn an open appeal (moderators).",
)
_action(
    "uphold",
    pb.MODERATION_ACTION_UPHOLD,
    "Refuse an open appeal: the decision stands (another moderator than the decider).",
)


@review_app.command("appeal")
def review_appeal(
    community_id: str,
    post_id: str,
    statement: Annotated[str, typer.Option(help="Why the decision is wrong (1-2000 characters).")],
    on_comment: OnComment = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Appeal the hold, hiding or removal of your post, once (its author)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.AppealModeration,
            pb.AppealModerationRequest(
                request_id=request_id or str(uuid.uuid4()),
                community_id=community_id,
                target_kind=_kind(on_comment),
                target_id=post_id,
                statement=statement,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.case, True, "case")
        return
    typer.echo(f"{post_id} appealed")


@review_app.command("log")
def review_log(
    community_id: str,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Every moderation step of the community, newest first (moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ListModerationLog,
            pb.ListModerationLogRequest(
                community_id=community_id, page_size=page_size, page_token=page_token
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "log")
        return
    table = Table(title=f"moderation log ({len(reply.entries)})")
    for column in ("time", "action", "id", "by", "reason"):
        table.add_column(column)
    for entry in reply.entries:
        table.add_row(
            _when(entry, "time"),
            entry.action,
            entry.target_id,
            entry.actor_user_id or "(keyword rule)",
            escape(entry.reason),
        )
    out.print(table)
    _next_page(reply.next_page_token)
