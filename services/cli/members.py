"""`studyhall community` and `studyhall member`: communities and who belongs to them."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import typer
from google.protobuf.json_format import MessageToDict
from rich.table import Table

from services.cli.common import (
    AsJson,
    AsUser,
    Operator,
    RequestId,
    call,
    enum_option,
    metadata,
    out,
    show,
    stub,
    timestamp,
)
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc

community_app = typer.Typer(help="Communities.", no_args_is_help=True)
member_app = typer.Typer(help="Membership of communities.", no_args_is_help=True)


@community_app.command("create")
def community_create(
    name: Annotated[str, typer.Option(help="Display name.")],
    topic: Annotated[str, typer.Option(help="What the community studies, e.g. english.")],
    slug: Annotated[str, typer.Option(help="URL handle; derived from the name when empty.")] = "",
    mission: str = "",
    audience: str = "",
    tag: Annotated[list[str] | None, typer.Option(help="Repeat for several tags.")] = None,
    visibility: Annotated[str, typer.Option(help="public, unlisted or private.")] = "public",
    join_policy: Annotated[str, typer.Option(help="open, approval or invite-only.")] = "open",
    question: Annotated[
        list[str] | None, typer.Option(help="A join question for applicants; repeat.")
    ] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
    operator: Operator = False,
) -> None:
    """Create a community; prints its id. The caller becomes its owner."""
    request = members_pb.CreateCommunityRequest(
        request_id=request_id or str(uuid.uuid4()),
        name=name,
        slug=slug,
        topic=topic,
        mission=mission,
        audience=audience,
        tags=tag or [],
        visibility=enum_option(members_pb.Visibility, "VISIBILITY_", visibility),  # type: ignore[arg-type]
        join_policy=enum_option(members_pb.JoinPolicy, "JOIN_POLICY_", join_policy),  # type: ignore[arg-type]
        join_questions=question or [],
    )
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(client.CreateCommunity, request, metadata(as_user, operator))
    typer.echo(reply.community.id)


@community_app.command("show")
def community_show(
    community_id: str, as_user: AsUser = None, operator: Operator = False, as_json: AsJson = False
) -> None:
    """Show a community."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.GetCommunity,
            members_pb.GetCommunityRequest(community_id=community_id),
            metadata(as_user, operator),
        )
    show(reply.community, as_json, "community")


@member_app.command("join")
def member_join(
    community_id: str,
    answer: Annotated[
        list[str] | None, typer.Option(help="Answer to a join question; repeat, in order.")
    ] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Join an open community, or ask to join one that reviews applicants."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.JoinCommunity,
            members_pb.JoinCommunityRequest(
                community_id=community_id,
                answers=answer or [],
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    if reply.HasField("join_request"):
        typer.echo("asked to join; a moderator will review your request")
        return
    show(reply.membership, False, "membership")


@member_app.command("requests")
def member_requests(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """Pending join requests of a community (moderators)."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.ListJoinRequests,
            members_pb.ListJoinRequestsRequest(community_id=community_id, page_size=100),
            metadata(as_user),
        )
    if as_json:
        rows = [MessageToDict(r, preserving_proto_field_name=True) for r in reply.join_requests]
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"join requests ({len(reply.join_requests)})")
    for column in ("user", "asked at", "answers"):
        table.add_column(column)
    for request in reply.join_requests:
        table.add_row(
            request.user_id, request.create_time.ToJsonString()[:19], " | ".join(request.answers)
        )
    out.print(table)


@member_app.command("review")
def member_review(
    community_id: str,
    user_id: str,
    approve: Annotated[bool, typer.Option("--approve/--reject", help="Let them in or not.")],
    reason: Annotated[str, typer.Option(help="Required to reject; the applicant sees it.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Approve or reject a join request (moderators)."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.ReviewJoinRequest,
            members_pb.ReviewJoinRequestRequest(
                community_id=community_id,
                user_id=user_id,
                approve=approve,
                reason=reason,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    typer.echo(
        members_pb.JoinRequestState.Name(reply.join_request.state)
        .removeprefix("JOIN_REQUEST_STATE_")
        .lower()
    )


@member_app.command("role")
def member_role(
    community_id: str,
    user_id: str,
    role: Annotated[str, typer.Argument(help="member, moderator or admin.")],
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Give a member another role (admins; only the owner makes admins)."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.ChangeRole,
            members_pb.ChangeRoleRequest(
                community_id=community_id,
                user_id=user_id,
                role=enum_option(members_pb.Role, "ROLE_", role),  # type: ignore[arg-type]
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    show(reply.membership, False, "membership")


@member_app.command("moderate")
def member_moderate(
    community_id: str,
    user_id: str,
    action: Annotated[str, typer.Argument(help="remove, ban, unban, mute or unmute.")],
    reason: Annotated[str, typer.Option(help="Required for remove, ban and mute.")] = "",
    until: Annotated[str, typer.Option(help="Ban or mute end, ISO 8601 with offset.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Remove, ban, unban, mute or unmute a member (moderators)."""
    request = members_pb.ModerateMemberRequest(
        community_id=community_id,
        user_id=user_id,
        action=enum_option(members_pb.ModerationAction, "MODERATION_ACTION_", action),  # type: ignore[arg-type]
        reason=reason,
        request_id=request_id or str(uuid.uuid4()),
    )
    if until:
        request.until.CopyFrom(timestamp(until, "--until"))
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(client.ModerateMember, request, metadata(as_user))
    show(reply.membership, False, "membership")


@member_app.command("audit")
def member_audit(community_id: str, as_user: AsUser = None) -> None:
    """The moderator and admin actions in a community, newest first (admins)."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.ListAuditLog,
            members_pb.ListAuditLogRequest(community_id=community_id, page_size=100),
            metadata(as_user),
        )
    table = Table(title="audit log")
    for column in ("when", "who", "action", "whom", "note"):
        table.add_column(column)
    for entry in reply.entries:
        table.add_row(
            entry.create_time.ToJsonString()[:19],
            entry.actor_user_id,
            entry.action,
            entry.target_user_id,
            entry.note,
        )
    out.print(table)


@member_app.command("leave")
def member_leave(community_id: str, request_id: RequestId = "", as_user: AsUser = None) -> None:
    """Leave a community."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        call(
            client.LeaveCommunity,
            members_pb.LeaveCommunityRequest(
                community_id=community_id, request_id=request_id or str(uuid.uuid4())
            ),
            metadata(as_user),
        )
    typer.echo(f"left {community_id}")
