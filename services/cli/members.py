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
    as_json: AsJson = False,
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
    if as_json:
        show(reply, True, "community")
        return
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
    invite: Annotated[str, typer.Option(help="An invite code.")] = "",
    accept_rules: Annotated[
        int, typer.Option(help="The version of the rules you read and accept.")
    ] = 0,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Join an open community (any, with an invite), or ask to join one that reviews."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.JoinCommunity,
            members_pb.JoinCommunityRequest(
                community_id=community_id,
                answers=answer or [],
                invite_code=invite,
                accepted_rules_version=accept_rules,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "join")
        return
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
    as_json: AsJson = False,
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
    if as_json:
        show(reply, True, "join_request")
        return
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
    as_json: AsJson = False,
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
    if as_json:
        show(reply, True, "membership")
        return
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
    as_json: AsJson = False,
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
    if as_json:
        show(reply, True, "membership")
        return
    show(reply.membership, False, "membership")


@member_app.command("audit")
def member_audit(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """The moderator and admin actions in a community, newest first (admins)."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.ListAuditLog,
            members_pb.ListAuditLogRequest(community_id=community_id, page_size=100),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "audit")
        return
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
def member_leave(
    community_id: str, request_id: RequestId = "", as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Leave a community."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.LeaveCommunity,
            members_pb.LeaveCommunityRequest(
                community_id=community_id, request_id=request_id or str(uuid.uuid4())
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "left")
        return
    typer.echo(f"left {community_id}")


# --- Invites, rules, reports, data rights ---

invite_app = typer.Typer(help="Invite links (moderators).", no_args_is_help=True)
rules_app = typer.Typer(help="A community's rules, in versions.", no_args_is_help=True)
report_app = typer.Typer(help="Reports to moderators, and appeals.", no_args_is_help=True)
member_app.add_typer(invite_app, name="invite")
member_app.add_typer(report_app, name="report")
community_app.add_typer(rules_app, name="rules")


@invite_app.command("create")
def invite_create(
    community_id: str,
    max_uses: Annotated[int, typer.Option(help="0 for unlimited, else 1 to 10000.")] = 0,
    expires: Annotated[str, typer.Option(help="ISO 8601 with offset; 7 days when empty.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Make an invite link; prints its code (shown only now)."""
    request = members_pb.CreateInviteRequest(
        community_id=community_id,
        max_uses=max_uses,
        request_id=request_id or str(uuid.uuid4()),
    )
    if expires:
        request.expire_time.CopyFrom(timestamp(expires, "--expires"))
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(client.CreateInvite, request, metadata(as_user))
    if as_json:
        show(reply, True, "invite")
        return
    typer.echo(reply.code)


@invite_app.command("list")
def invite_list(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """A community's invites, usable ones first."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.ListInvites,
            members_pb.ListInvitesRequest(community_id=community_id, page_size=100),
            metadata(as_user),
        )
    if as_json:
        rows = [MessageToDict(i, preserving_proto_field_name=True) for i in reply.invites]
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"invites ({len(reply.invites)})")
    for column in ("id", "code", "uses", "expires", "by", "usable"):
        table.add_column(column)
    for invite in reply.invites:
        table.add_row(
            invite.invite_id,
            invite.code_prefix + "…",
            f"{invite.uses}/{invite.max_uses or '∞'}",
            invite.expire_time.ToJsonString()[:19],
            invite.creator_user_id,
            "yes" if invite.usable else "no",
        )
    out.print(table)


@invite_app.command("revoke")
def invite_revoke(
    community_id: str,
    invite_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Stop an invite from admitting anyone else."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.RevokeInvite,
            members_pb.RevokeInviteRequest(
                community_id=community_id,
                invite_id=invite_id,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "invite")
        return
    typer.echo(f"revoked {invite_id}")


@rules_app.command("set")
def rules_set(
    community_id: str,
    rule: Annotated[list[str], typer.Option(help="A rule as 'title: body'; repeat, in order.")],
    etag: Annotated[str, typer.Option(help="The community's etag you last read.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Publish a new version of the rules (admins); prints the version."""
    rules = [
        members_pb.Rule(title=title.strip(), body=body.strip())
        for title, _, body in (item.partition(":") for item in rule)
    ]
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.UpdateRules,
            members_pb.UpdateRulesRequest(
                community_id=community_id,
                rules=rules,
                etag=etag,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "rules")
        return
    typer.echo(reply.rules.version)


@rules_app.command("show")
def rules_show(
    community_id: str,
    version: Annotated[int, typer.Option(help="0 for the current version.")] = 0,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Show a version of a community's rules."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.GetRules,
            members_pb.GetRulesRequest(community_id=community_id, version=version),
            metadata(as_user),
        )
    if as_json:
        show(reply.rules, True, "rules")
        return
    out.print(f"rules version {reply.rules.version}")
    for number, item in enumerate(reply.rules.rules, start=1):
        out.print(f"{number}. [bold]{item.title}[/bold] {item.body}")


@member_app.command("accept-rules")
def member_accept_rules(
    community_id: str,
    version: Annotated[int, typer.Argument(help="The version you read.")],
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Accept the current version of a community's rules."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.AcceptRules,
            members_pb.AcceptRulesRequest(
                community_id=community_id,
                version=version,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "membership")
        return
    show(reply.membership, False, "membership")


@report_app.command("file")
def report_file(
    community_id: str,
    reason: Annotated[
        str, typer.Option(help="spam, harassment, off-topic, misinformation, other.")
    ],
    user: Annotated[str, typer.Option(help="The member reported.")] = "",
    content: Annotated[
        str, typer.Option(help="Content reported as service:kind:id, e.g. content:post:<uuid>.")
    ] = "",
    author: Annotated[str, typer.Option(help="The content's author, when known.")] = "",
    details: str = "",
    evidence: Annotated[
        list[str] | None, typer.Option(help="An https URL or content reference; repeat.")
    ] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Report a member or a piece of content; prints the report id."""
    request = members_pb.FileReportRequest(
        community_id=community_id,
        target_user_id=user,
        reason=enum_option(members_pb.ReportReason, "REPORT_REASON_", reason),  # type: ignore[arg-type]
        details=details,
        evidence=evidence or [],
        request_id=request_id or str(uuid.uuid4()),
    )
    if content:
        service, _, rest = content.partition(":")
        kind, _, item = rest.partition(":")
        request.target.CopyFrom(
            members_pb.ContentRef(service=service, kind=kind, id=item, author_user_id=author)
        )
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(client.FileReport, request, metadata(as_user))
    if as_json:
        show(reply, True, "report")
        return
    typer.echo(reply.report.report_id)


@report_app.command("list")
def report_list(
    community_id: str,
    state: Annotated[str, typer.Option(help="open, resolved or appealed; all when empty.")] = "",
    mine: Annotated[bool, typer.Option(help="Only the reports you filed.")] = False,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """The report queue (moderators), or your own reports with --mine."""
    request = members_pb.ListReportsRequest(community_id=community_id, mine=mine, page_size=100)
    if state:
        request.state = enum_option(members_pb.ReportState, "REPORT_STATE_", state)  # type: ignore[assignment]
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(client.ListReports, request, metadata(as_user))
    if as_json:
        rows = [MessageToDict(r, preserving_proto_field_name=True) for r in reply.reports]
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"reports ({len(reply.reports)})")
    for column in ("id", "filed", "by", "about", "reason", "state"):
        table.add_column(column)
    for report in reply.reports:
        about = report.target_user_id or f"{report.target.kind} {report.target.id}"
        table.add_row(
            report.report_id,
            report.create_time.ToJsonString()[:19],
            report.reporter_user_id,
            about,
            members_pb.ReportReason.Name(report.reason).removeprefix("REPORT_REASON_").lower(),
            members_pb.ReportState.Name(report.state).removeprefix("REPORT_STATE_").lower(),
        )
    out.print(table)


@report_app.command("resolve")
def report_resolve(
    community_id: str,
    report_id: str,
    resolution: Annotated[
        str, typer.Argument(help="dismiss, warn, mute, ban; on appeal uphold or overturn.")
    ],
    note: Annotated[str, typer.Option(help="Why; the member acted on sees it.")],
    until: Annotated[str, typer.Option(help="Mute or ban end, ISO 8601 with offset.")] = "",
    remove_content: Annotated[
        bool, typer.Option(help="Remove the reported content as well (warn, mute or ban).")
    ] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Decide a report or its appeal."""
    request = members_pb.ResolveReportRequest(
        community_id=community_id,
        report_id=report_id,
        resolution=enum_option(members_pb.Resolution, "RESOLUTION_", resolution),  # type: ignore[arg-type]
        note=note,
        remove_content=remove_content,
        request_id=request_id or str(uuid.uuid4()),
    )
    if until:
        request.until.CopyFrom(timestamp(until, "--until"))
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(client.ResolveReport, request, metadata(as_user))
    if as_json:
        show(reply, True, "report")
        return
    show(reply.report, False, "report")


@report_app.command("appeal")
def report_appeal(
    community_id: str,
    report_id: str,
    statement: Annotated[str, typer.Option(help="Why the decision is wrong.")],
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Appeal a decision that acted on you (once)."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.AppealReport,
            members_pb.AppealReportRequest(
                community_id=community_id,
                report_id=report_id,
                statement=statement,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "report")
        return
    typer.echo(
        members_pb.ReportState.Name(reply.report.state).removeprefix("REPORT_STATE_").lower()
    )


@member_app.command("export")
def member_export(
    community_id: str,
    user: Annotated[str, typer.Option(help="Operators: whose data.")] = "",
    as_user: AsUser = None,
    operator: Operator = False,
) -> None:
    """Print everything a community holds about you, as JSON."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.ExportMyData,
            members_pb.ExportMyDataRequest(community_id=community_id, user_id=user),
            metadata(as_user, operator),
        )
    typer.echo(reply.document.decode())


@member_app.command("erase")
def member_erase(
    community_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: erasure cannot be undone.")] = False,
    user: Annotated[str, typer.Option(help="Operators: whose data.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    operator: Operator = False,
    as_json: AsJson = False,
) -> None:
    """Leave a community and erase what you wrote there (a ban or mute stays)."""
    with stub("members", members_grpc.MembersServiceStub) as client:
        reply = call(
            client.EraseMyData,
            members_pb.EraseMyDataRequest(
                community_id=community_id,
                confirm=yes,
                user_id=user,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user, operator),
        )
    if as_json:
        show(reply, True, "erased")
        return
    typer.echo(f"erased your data in {community_id}")
