"""Members' reports about content (docs/decisions/0054): ReportFiled opens a report about a
post, which waits in the review queue; ReportResolved closes it, and when its decision
removes the content the post is removed ("report <id>", by the resolver); an appeal's
decision that overturns it puts the post back. Each report keeps the newest version seen:
a redelivered or older fact changes nothing, and a decision that arrives before its filing
leaves the filing nothing to open."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion.store import CommentRepository
from services.content.moderation import decisions
from services.content.moderation.cases import (
    CaseRepository,
    ContentReport,
    LogRepository,
    ReportRepository,
)
from services.content.moderation.events import follow_comment, follow_post, moderated
from services.content.posts.store import PostRepository
from studyhall.members.v1 import members_service_pb2 as members_pb

CONTENT = "content"


async def filed(session: AsyncSession, event: Any) -> None:
    if event.target_service != CONTENT or not event.target_id:
        return
    reports = ReportRepository(session)
    known = await reports.get(event.report_id)
    if known is not None:
        if known.version < event.version:
            await reports.save(replace(known, version=int(event.version)), True)
        return
    moment = (
        event.create_time.ToDatetime(tzinfo=UTC)
        if event.HasField("create_time")
        else datetime.now(UTC)
    )
    report = ContentReport(
        report_id=event.report_id,
        community_id=event.community_id,
        target_kind=event.target_kind,
        target_id=event.target_id,
        reason=int(event.reason),
        open=True,
        version=int(event.version),
        filed_at=moment,
    )
    await reports.save(report, False)
    await _count(session, report, +1, moment)


async def resolved(session: AsyncSession, event: Any) -> None:
    reports = ReportRepository(session)
    known = await reports.get(event.report_id)
    if known is not None and known.version >= event.version:
        return
    now = datetime.now(UTC)
    if known is None:
        if event.target_service != CONTENT or not event.target_id:
            return
        # Decided before its filing arrived: the filing finds it closed.
        report = ContentReport(
            report_id=event.report_id,
            community_id=event.community_id,
            target_kind=event.target_kind,
            target_id=event.target_id,
            reason=0,
            open=False,
            version=int(event.version),
        )
        await reports.save(report, False)
    else:
        report = replace(known, open=False, version=int(event.version))
        await reports.save(report, True)
        if known.open:
            await _count(session, report, -1, now)
    if event.remove_content and report.target_kind == decisions.POST:
        await _act(session, report, event, now)
    elif event.remove_content and report.target_kind == decisions.COMMENT:
        await _act_on_comment(session, report, event, now)


async def _act_on_comment(
    session: AsyncSession, report: ContentReport, event: Any, now: datetime
) -> None:
    comments = CommentRepository(session)
    comment = await comments.get(report.community_id, report.target_id, for_update=True)
    if comment is None:
        return
    cases = CaseRepository(session)
    case = await cases.get(report.community_id, decisions.COMMENT, comment.id)
    resolver = event.resolver_user_id
    if not event.appeal:
        said = decisions.report_removes_comment(comment, case, report.report_id, resolver, now)
    elif event.resolution == members_pb.RESOLUTION_OVERTURN:
        said = decisions.report_overturned_comment(comment, case, report.report_id, resolver, now)
    else:
        return
    if said is None:
        return
    await comments.save(said.comment)
    await follow_comment(session, comment, said, resolver, now)
    await cases.save(said.case, case is not None)
    reason = said.case.reason
    await LogRepository(session).add(said.case, said.step, resolver, reason, now)
    await moderated(session, said.step, said.case, resolver, reason, now)


async def _act(session: AsyncSession, report: ContentReport, event: Any, now: datetime) -> None:
    post = await PostRepository(session).get(report.community_id, report.target_id, for_update=True)
    if post is None:
        return
    cases = CaseRepository(session)
    case = await cases.get(report.community_id, decisions.POST, post.id)
    resolver = event.resolver_user_id
    if not event.appeal:
        decision = decisions.report_removes(post, case, report.report_id, resolver, now)
    elif event.resolution == members_pb.RESOLUTION_OVERTURN:
        decision = decisions.report_overturned(post, case, report.report_id, resolver, now)
    else:
        return
    if decision is None:
        return
    await PostRepository(session).save(decision.post)
    await follow_post(session, post, decision, resolver, now)
    await cases.save(decision.case, case is not None)
    reason = decision.case.reason
    await LogRepository(session).add(decision.case, decision.step, resolver, reason, now)
    await moderated(session, decision.step, decision.case, resolver, reason, now)


async def _count(session: AsyncSession, report: ContentReport, delta: int, now: datetime) -> None:
    """The item's open reports, and whether they keep it in the review queue."""
    cases = CaseRepository(session)
    if report.target_kind == decisions.POST:
        post = await PostRepository(session).get(report.community_id, report.target_id)
        if post is None:
            return
        case = await cases.get(report.community_id, decisions.POST, post.id)
        current = case or decisions.new_case(post, now)
    elif report.target_kind == decisions.COMMENT:
        comment = await CommentRepository(session).get(report.community_id, report.target_id)
        if comment is None:
            return
        case = await cases.get(report.community_id, decisions.COMMENT, comment.id)
        current = case or decisions.new_comment_case(comment, now)
    else:
        return
    count = max(0, current.open_reports + delta)
    waiting = count > 0 or current.appeal_open or current.status is decisions.Status.HELD
    queued = (current.queued_at or now) if waiting else None
    await cases.save(replace(current, open_reports=count, queued_at=queued), case is not None)
