"""gRPC handlers for moderating posts: a moderator's action, the author's appeal, the review
queue and the moderation log (docs/decisions/0052)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion.domain import Comment, comment_not_found
from services.content.discussion.store import CommentRepository
from services.content.moderation import decisions
from services.content.moderation.cases import (
    CaseRepository,
    ContentReport,
    LogEntry,
    LogRepository,
    ReportRepository,
)
from services.content.moderation.decisions import COMMENT, POST, Case, Status
from services.content.moderation.events import follow_comment, follow_post, moderated
from services.content.posts.domain import Post, PostState, post_not_found
from services.content.posts.store import PostRepository
from services.kit.access import Access, Role, Standing, check_writable
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2 as members_pb

_KINDS = [pb.MODERATION_TARGET_KIND_POST, pb.MODERATION_TARGET_KIND_COMMENT]
_KIND = {POST: pb.MODERATION_TARGET_KIND_POST, COMMENT: pb.MODERATION_TARGET_KIND_COMMENT}
_STATUS = {
    Status.VISIBLE: pb.MODERATION_STATUS_VISIBLE,
    Status.HELD: pb.MODERATION_STATUS_HELD,
    Status.HIDDEN: pb.MODERATION_STATUS_HIDDEN,
    Status.REMOVED: pb.MODERATION_STATUS_REMOVED,
}


class ReviewApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def ModerateContent(
        self, request: pb.ModerateContentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModerateContentResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum(
            "target_kind", request.target_kind, _KINDS, "ModerationTargetKind", required=True
        )
        problems.uuid("target_id", request.target_id)
        problems.enum("action", request.action, decisions.Action, "ModerationAction", required=True)
        if int(request.action) in {int(a) for a in decisions.NEEDS_REASON}:
            problems.text("reason", request.reason, max_length=decisions.REASON_MAX)
        else:
            problems.text("reason", request.reason, required=False, max_length=decisions.REASON_MAX)
        problems.raise_if_any()
        action = decisions.Action(request.action)
        standing = await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "moderating content", writable=True
        )
        rank = _rank(caller, standing)
        reason = request.reason.strip()

        async def act(session: AsyncSession) -> pb.ModerateContentResponse:
            now = datetime.now(UTC)
            cases = CaseRepository(session)
            community_id, actor = request.community_id, caller.user_id
            if request.target_kind == pb.MODERATION_TARGET_KIND_COMMENT:
                comment = await _comment(session, community_id, request.target_id)
                case = await cases.get(community_id, COMMENT, comment.id)
                said = decisions.decide_comment(comment, case, action, actor, rank, reason, now)
                await CommentRepository(session).save(said.comment)
                await follow_comment(session, comment, said, actor, now)
                decided, step = said.case, said.step
            else:
                post = await _post(session, community_id, request.target_id)
                case = await cases.get(community_id, POST, post.id)
                decision = decisions.decide(post, case, action, actor, rank, reason, now)
                await PostRepository(session).save(decision.post)
                await follow_post(session, post, decision, actor, now)
                decided, step = decision.case, decision.step
            await cases.save(decided, case is not None)
            await LogRepository(session).add(decided, step, actor, reason, now)
            await moderated(session, step, decided, actor, reason, now)
            return pb.ModerateContentResponse(case=case_to_proto(decided))

        return await self.writer.write(caller.user_id, request, pb.ModerateContentResponse, act)

    async def AppealModeration(
        self, request: pb.AppealModerationRequest, context: grpc.aio.ServicerContext
    ) -> pb.AppealModerationResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum(
            "target_kind", request.target_kind, _KINDS, "ModerationTargetKind", required=True
        )
        problems.uuid("target_id", request.target_id)
        problems.text("statement", request.statement, max_length=decisions.STATEMENT_MAX)
        problems.raise_if_any()
        standing = await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "appealing a moderation decision"
        )

        async def appeal(session: AsyncSession) -> pb.AppealModerationResponse:
            now = datetime.now(UTC)
            community_id, statement = request.community_id, request.statement.strip()
            moderator = _moderates(caller, standing)
            cases = CaseRepository(session)
            if request.target_kind == pb.MODERATION_TARGET_KIND_COMMENT:
                comment = await _comment(session, community_id, request.target_id)
                if not comment.visible_to(caller.user_id, moderator):
                    raise comment_not_found(comment.id, community_id)
                check_writable(community_id, standing, "appealing a moderation decision")
                case = await cases.get(community_id, COMMENT, comment.id)
                appealed = decisions.appeal_comment(
                    comment, case, caller.user_id, statement, now, operator=caller.operator
                )
            else:
                post = await _post(session, community_id, request.target_id)
                if not post.visible_to(caller.user_id, moderator):
                    raise post_not_found(post.id, post.community_id)
                check_writable(community_id, standing, "appealing a moderation decision")
                case = await cases.get(community_id, POST, post.id)
                appealed = decisions.appeal(
                    post, case, caller.user_id, statement, now, operator=caller.operator
                )
            await cases.save(appealed, case is not None)
            await LogRepository(session).add(
                appealed, "appeal", caller.user_id, appealed.appeal_statement, now
            )
            await moderated(session, "appeal", appealed, caller.user_id, "", now)
            return pb.AppealModerationResponse(case=case_to_proto(appealed))

        return await self.writer.write(caller.user_id, request, pb.AppealModerationResponse, appeal)

    async def ListReviewQueue(
        self, request: pb.ListReviewQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListReviewQueueResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("reason", request.reason, pb.ReviewReason.values(), "ReviewReason")
        page = read_page(
            problems, request, ["review-queue", request.community_id, str(int(request.reason))]
        )
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading the review queue"
        )
        async with self.database.read() as session:
            found = await CaseRepository(session).queue(
                request.community_id, int(request.reason), page.after, page.size + 1
            )
            cases, token = page_of(found, page, _queue_position)
            reported = await ReportRepository(session).open_about(
                [case.target_id for case in cases if case.open_reports]
            )
        about: dict[str, list[ContentReport]] = {}
        for report in reported:
            about.setdefault(report.target_id, []).append(report)
        return pb.ListReviewQueueResponse(
            cases=[case_to_proto(case, about.get(case.target_id, [])) for case in cases],
            next_page_token=token,
        )

    async def ListModerationLog(
        self, request: pb.ListModerationLogRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModerationLogResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["moderation-log", request.community_id])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading the moderation log"
        )
        async with self.database.read() as session:
            found = await LogRepository(session).page(
                request.community_id, page.after, page.size + 1
            )
        entries, token = page_of(found, page, lambda entry: (entry.at, entry.id))
        return pb.ListModerationLogResponse(
            entries=[_entry_to_proto(entry) for entry in entries], next_page_token=token
        )


async def _comment(session: AsyncSession, community_id: str, comment_id: str) -> Comment:
    # Looked up within the community, on a post that is there (any state a moderator sees).
    comment = await CommentRepository(session).get(community_id, comment_id, for_update=True)
    if comment is None:
        raise comment_not_found(comment_id, community_id)
    post = await PostRepository(session).get(community_id, comment.post_id)
    if post is None or post.state is PostState.DRAFT:
        raise comment_not_found(comment_id, community_id)
    return comment


async def _post(session: AsyncSession, community_id: str, post_id: str) -> Post:
    # Looked up within the community: another community's post is simply not found.
    post = await PostRepository(session).get(community_id, post_id, for_update=True)
    if post is None:
        raise post_not_found(post_id, community_id)
    return post


async def moderation_of(session: AsyncSession, post: Post) -> pb.ModerationCase | None:
    """Where a post stands in moderation, with its open reports (GetPost, handed in by
    app.py)."""
    case = await CaseRepository(session).get(post.community_id, POST, post.id)
    if case is None:
        return None
    reports = await ReportRepository(session).open_about([post.id])
    return case_to_proto(case, reports)


def case_to_proto(case: Case, reports: Sequence[ContentReport] = ()) -> pb.ModerationCase:
    reasons: list[pb.ReviewReason.ValueType] = []
    if case.queued_at is not None and case.status is Status.HELD:
        reasons.append(pb.REVIEW_REASON_HELD)
    if case.appeal_open:
        reasons.append(pb.REVIEW_REASON_APPEALED)
    if case.open_reports:
        reasons.append(pb.REVIEW_REASON_REPORTED)
    shown = pb.ModerationCase(
        community_id=case.community_id,
        target_kind=_KIND[case.target_kind],
        target_id=case.target_id,
        author_user_id=case.author_user_id,
        status=_STATUS[case.status],
        reason=case.reason,
        actor_user_id=case.actor_user_id,
        decide_time=timestamp(case.decided_at),
        appealed=case.appealed,
        appeal_open=case.appeal_open,
        appeal_statement=case.appeal_statement,
        review_reasons=reasons,
        version=case.version,
        open_report_count=case.open_reports,
        report_ids=[report.report_id for report in reports],
        report_reasons=[_report_reason(report.reason) for report in reports],
    )
    if case.appealed_at is not None:
        shown.appeal_time.CopyFrom(timestamp(case.appealed_at))
    if case.queued_at is not None:
        shown.queue_time.CopyFrom(timestamp(case.queued_at))
    return shown


def _entry_to_proto(entry: LogEntry) -> pb.ModerationLogEntry:
    return pb.ModerationLogEntry(
        id=entry.id,
        community_id=entry.community_id,
        action=entry.action,
        target_kind=_KIND[entry.target_kind],
        target_id=entry.target_id,
        actor_user_id=entry.actor_user_id,
        reason=entry.reason,
        time=timestamp(entry.at),
    )


def _report_reason(reason: int) -> str:
    try:
        return members_pb.ReportReason.Name(members_pb.ReportReason.ValueType(reason))
    except ValueError:
        return str(reason)


def _queue_position(case: Case) -> tuple[datetime, str]:
    assert case.queued_at is not None
    return case.queued_at, case.target_id


def _rank(caller: Identity, standing: Standing) -> int:
    if caller.operator:
        return decisions.OPERATOR_RANK
    return int(standing.role) if standing.role is not None else 0


def _moderates(caller: Identity, standing: Standing) -> bool:
    return caller.operator or (standing.role is not None and standing.role >= Role.MODERATOR)
