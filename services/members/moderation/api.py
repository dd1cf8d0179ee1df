"""gRPC handlers of moderation: actions on members, reports and their appeals."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import AlreadyExists, InvalidArgument, NotFound
from services.kit.idempotency import IdempotentWriter
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from services.members.communities import domain
from services.members.communities.access import community_for, require_role, require_writable
from services.members.communities.messages import membership_to_proto
from services.members.communities.store import CommunityRepository, log_moderation
from services.members.moderation import reports
from services.members.moderation.domain import Action, moderate
from services.members.moderation.events import ModerationEvents
from services.members.moderation.store import PostRepository, ReportRepository
from studyhall.members.v1 import members_service_pb2 as pb

# The moderator action a decision takes on the member, and the one an overturn takes back.
_ACTIONS = {reports.Resolution.MUTE: Action.MUTE, reports.Resolution.BAN: Action.BAN}
_LIFTS = {
    reports.Resolution.MUTE: Action.UNMUTE,
    reports.Resolution.BAN: Action.UNBAN,
}


class ModerationApi:
    """Acting on members (warn, mute, ban, remove, and lifting them) and reports with their
    appeals."""

    def __init__(self, database: Database, writer: IdempotentWriter) -> None:
        self.database = database
        self.writer = writer

    async def FileReport(
        self, request: pb.FileReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.FileReportResponse:
        caller = current_identity()
        _check_report(request, caller)
        target = (
            (request.target.service, request.target.kind, request.target.id)
            if request.HasField("target")
            else None
        )

        async def file(session: AsyncSession) -> pb.FileReportResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MEMBER, "reporting to moderators"
            )
            require_writable(community, "reporting")
            if target:
                subject = await _author_of(session, community.id, request.target.id, caller)
            else:
                subject = request.target_user_id
                if await communities.membership(community.id, subject) is None:
                    raise NotFound(f"{subject} is not a member of community {community.id}")
            report = reports.file(
                community.id,
                caller.user_id,
                target_user_id=subject,
                target=target,
                reason=reports.Reason(request.reason),
                details=request.details,
                evidence=list(request.evidence),
            )
            repository = ReportRepository(session)
            if await repository.open_exists(report):
                raise AlreadyExists(
                    "you already have an open report about this; moderators will get to it"
                )
            await repository.add(report)
            await ModerationEvents(session).report_filed(report)
            return pb.FileReportResponse(report=report_to_proto(report))

        return await self.writer.write(caller.user_id, request, pb.FileReportResponse, file)

    async def ListReports(
        self, request: pb.ListReportsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListReportsResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("state", request.state, reports.State, "ReportState")
        query = (
            "reports",
            request.community_id,
            str(request.state),
            caller.user_id if request.mine else "",
        )
        paging = read_page(problems, request, query)
        problems.raise_if_any()
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities,
                community,
                caller,
                domain.Role.MEMBER if request.mine else domain.Role.MODERATOR,
                "listing your reports" if request.mine else "reading the report queue",
            )
            rows = await ReportRepository(session).listing(
                community.id,
                state=reports.State(request.state) if request.state else None,
                reporter=caller.user_id if request.mine else None,
                after=paging.after,
                limit=paging.size + 1,
            )
        page, token = page_of(rows, paging, lambda report: (report.created_at, report.id))
        return pb.ListReportsResponse(
            reports=[report_to_proto(report) for report in page], next_page_token=token
        )

    async def ResolveReport(
        self, request: pb.ResolveReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResolveReportResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("report_id", request.report_id)
        problems.enum(
            "resolution", request.resolution, reports.Resolution, "Resolution", required=True
        )
        problems.text("note", request.note, max_length=1000)
        if request.HasField("until") and request.resolution not in (
            pb.RESOLUTION_MUTE,
            pb.RESOLUTION_BAN,
        ):
            problems.add("until", "only mutes and bans have an end")
        problems.raise_if_any()
        until = request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None
        resolution = reports.Resolution(request.resolution)

        async def resolve(session: AsyncSession) -> pb.ResolveReportResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "resolving reports"
            )
            require_writable(community, "resolving reports")
            actor = (
                None
                if caller.operator
                else await communities.membership(community.id, caller.user_id)
            )
            repository = ReportRepository(session)
            report = await repository.get(community.id, request.report_id)
            decided = reports.resolve(
                report,
                caller.user_id,
                actor,
                resolution,
                request.note,
                until,
                request.remove_content,
            )
            changed = await _act_on_member(session, community, actor, decided, caller)
            await repository.save(decided)
            await ModerationEvents(session).report_resolved(decided)
            appeal = decided.appeal_decision is not None
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action=("appeal_" if appeal else "report_") + resolution.name.lower(),
                target=decided.target_user_id,
                reason=f"report {decided.id}: {request.note.strip()}"
                + (" (content removed)" if request.remove_content else ""),
                until=until,
            )
            reply = pb.ResolveReportResponse(report=report_to_proto(decided))
            if changed is not None:
                reply.membership.CopyFrom(membership_to_proto(changed, community.rules_version))
            return reply

        return await self.writer.write(caller.user_id, request, pb.ResolveReportResponse, resolve)

    async def AppealReport(
        self, request: pb.AppealReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.AppealReportResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("report_id", request.report_id)
        problems.text("statement", request.statement, max_length=reports.MAX_TEXT)
        problems.raise_if_any()

        async def appeal(session: AsyncSession) -> pb.AppealReportResponse:
            # A banned member is no longer a member and may still appeal: the report about
            # them, not the community's visibility, decides what they may see.
            community = await CommunityRepository(session).get(request.community_id)
            repository = ReportRepository(session)
            report = await repository.get(community.id, request.report_id) if community else None
            appealed = reports.appeal(report, caller.user_id, request.statement)
            assert community is not None  # no community, no report: appeal() refused it
            require_writable(community, "appealing")
            await repository.save(appealed)
            await ModerationEvents(session).report_appealed(appealed)
            return pb.AppealReportResponse(report=report_to_proto(appealed, for_subject=True))

        return await self.writer.write(caller.user_id, request, pb.AppealReportResponse, appeal)

    async def ModerateMember(
        self, request: pb.ModerateMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModerateMemberResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("user_id", request.user_id, max_length=200)
        problems.enum("action", request.action, Action, "ModerationAction", required=True)
        needs_reason = request.action in (
            pb.MODERATION_ACTION_REMOVE,
            pb.MODERATION_ACTION_BAN,
            pb.MODERATION_ACTION_MUTE,
        )
        problems.text("reason", request.reason, required=needs_reason, max_length=1000)
        if request.HasField("until") and request.action not in (
            pb.MODERATION_ACTION_BAN,
            pb.MODERATION_ACTION_MUTE,
        ):
            problems.add("until", "only bans and mutes have an end")
        if request.user_id == caller.user_id:
            problems.add("user_id", "you cannot moderate yourself")
        problems.raise_if_any()
        until = request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None
        action = Action(request.action)

        async def act(session: AsyncSession) -> pb.ModerateMemberResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "moderating members"
            )
            require_writable(community, "moderating members")
            actor = (
                None
                if caller.operator
                else await communities.membership(community.id, caller.user_id)
            )
            target = await communities.membership(community.id, request.user_id)
            changed = moderate(community, actor, target, request.user_id, action, until)
            await communities.save_membership(changed)
            await ModerationEvents(session).moderated(changed, action, caller.user_id)
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action=action.name.lower(),
                target=request.user_id,
                reason=request.reason.strip(),
                until=until,
            )
            return pb.ModerateMemberResponse(
                membership=membership_to_proto(changed, community.rules_version)
            )

        return await self.writer.write(caller.user_id, request, pb.ModerateMemberResponse, act)


def _check_report(request: pb.FileReportRequest, caller: Identity) -> None:
    problems = Violations()
    about_content = request.HasField("target")
    if about_content == bool(request.target_user_id):
        problems.add(
            "target_user_id", "report either a member (target_user_id) or content (target)"
        )
    if about_content:
        if request.target.service not in reports.CONTENT_SERVICES:
            problems.add("target.service", f"must be one of {', '.join(reports.CONTENT_SERVICES)}")
        elif not reports.KIND_PATTERN.fullmatch(request.target.kind):
            problems.add("target.kind", "must be a lowercase kind such as post or comment")
        elif (request.target.service, request.target.kind) not in reports.REPORTABLE:
            problems.add(
                "target.kind",
                "only posts (service content, kind post) can be reported as content yet; "
                "report their author with target_user_id instead",
            )
        problems.uuid("target.id", request.target.id)
        # target.author_user_id is not read: the author comes from content's facts.
    else:
        problems.text("target_user_id", request.target_user_id)
        if request.target_user_id == caller.user_id:
            problems.add("target_user_id", "you cannot report yourself")
    problems.enum("reason", request.reason, reports.Reason, "ReportReason", required=True)
    problems.text(
        "details",
        request.details,
        required=request.reason == pb.REPORT_REASON_OTHER,
        max_length=reports.MAX_TEXT,
    )
    if len(request.evidence) > reports.MAX_EVIDENCE:
        problems.add("evidence", f"at most {reports.MAX_EVIDENCE} entries")
    for index, entry in enumerate(request.evidence):
        problem = reports.evidence_problem(entry)
        if problem:
            problems.add(f"evidence[{index}]", problem)
    problems.raise_if_any()


async def _author_of(
    session: AsyncSession, community_id: str, post_id: str, caller: Identity
) -> str:
    """The author of a post of the community, as content's facts tell ("" when erased);
    the same NOT_FOUND for a post of another community as for one never published."""
    post = await PostRepository(session).get(community_id, post_id)
    if post is None:
        raise NotFound(
            f"post {post_id} is not known in community {community_id}; a post published a "
            "moment ago is known here within seconds, so retry then"
        )
    if post.author_user_id == caller.user_id:
        raise InvalidArgument.field("target.id", "you cannot report your own post")
    return post.author_user_id


async def _act_on_member(
    session: AsyncSession,
    community: domain.Community,
    actor: domain.Membership | None,
    report: reports.Report,
    caller: Identity,
) -> domain.Membership | None:
    """Mute or ban as the decision says, or lift what an overturned one set; None if nothing
    changes for the member. Same rules of rank as ModerateMember, same events."""
    action: Action | None = None
    until: datetime | None = None
    if report.appeal_decision is None:
        assert report.decision is not None
        action = _ACTIONS.get(report.decision.resolution)
        until = report.decision.until
    else:
        lifted = reports.overturned_action(report)
        action = _LIFTS[lifted] if lifted else None
    if action is None or not report.target_user_id:
        # Nobody to act on: a decision on content whose author is unknown removes it alone.
        return None
    communities = CommunityRepository(session)
    target = await communities.membership(community.id, report.target_user_id)
    now = datetime.now(UTC)
    if action is Action.UNMUTE and not (target and target.muted(now)):
        return None
    if action is Action.UNBAN and not (target and target.banned(now)):
        return None
    changed = moderate(community, actor, target, report.target_user_id, action, until)
    await communities.save_membership(changed)
    await ModerationEvents(session).moderated(changed, action, caller.user_id)
    return changed


def _decision_to_proto(decision: reports.Decision | None) -> pb.ReportDecision | None:
    if decision is None:
        return None
    return pb.ReportDecision(
        resolution=pb.Resolution.ValueType(decision.resolution),
        resolver_user_id=decision.resolver_user_id,
        note=decision.note,
        until=timestamp(decision.until) if decision.until else None,
        decide_time=timestamp(decision.decided_at),
        remove_content=decision.remove_content,
    )


def report_to_proto(report: reports.Report, *, for_subject: bool = False) -> pb.Report:
    """`for_subject`: as the reported member sees it, without who reported or what they
    wrote (it could name them)."""
    message = pb.Report(
        report_id=report.id,
        community_id=report.community_id,
        reporter_user_id="" if for_subject else report.reporter_user_id,
        reason=pb.ReportReason.ValueType(report.reason),
        details="" if for_subject else report.details,
        evidence=[] if for_subject else report.evidence,
        state=pb.ReportState.ValueType(report.state),
        create_time=timestamp(report.created_at),
        decision=_decision_to_proto(report.decision),
        appealed=report.appealed_at is not None,
        appeal_statement=report.appeal_statement,
        appeal_time=timestamp(report.appealed_at) if report.appealed_at else None,
        appeal_decision=_decision_to_proto(report.appeal_decision),
        version=report.version,
    )
    if report.about_content:
        message.target.CopyFrom(
            pb.ContentRef(
                service=report.target_service,
                kind=report.target_kind,
                id=report.target_id,
                author_user_id=report.target_user_id,
            )
        )
    else:
        message.target_user_id = report.target_user_id
    return message
