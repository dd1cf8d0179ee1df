"""Reports and disputes: members report members or content, moderators decide, the member
acted on may appeal once to someone who outranks the first resolver."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from services.members.moderation.store import PostRepository
from services.members.store.tables import outbox
from studyhall.members.v1 import members_events_pb2 as events
from studyhall.members.v1 import members_service_pb2 as pb
from tests.support.errors import field_violations
from tests.support.members import Hall, post_known, refused
from tests.support.services import RunningService

pytestmark = pytest.mark.service


async def _staff(members: RunningService) -> Hall:
    """A community with a moderator (mod, mod2), an admin (adm) and members ann and troll."""
    hall = await Hall.create(members)
    for user in ("mod", "mod2", "adm", "ann", "troll"):
        await hall.join(user)
    await hall.promote("mod", pb.ROLE_MODERATOR)
    await hall.promote("mod2", pb.ROLE_MODERATOR)
    await hall.promote("adm", pb.ROLE_ADMIN)
    return hall


async def _file(hall: Hall, reporter: str, **fields: Any) -> pb.Report:
    fields.setdefault("reason", pb.REPORT_REASON_HARASSMENT)
    reply = await hall.stub.FileReport(
        pb.FileReportRequest(community_id=hall.id, **fields), metadata=hall.auth(reporter)
    )
    report: pb.Report = reply.report
    return report


async def _resolve(
    hall: Hall,
    by: str,
    report: pb.Report,
    resolution: pb.Resolution.ValueType,
    note: str = "seen the thread",
) -> pb.ResolveReportResponse:
    reply: pb.ResolveReportResponse = await hall.stub.ResolveReport(
        pb.ResolveReportRequest(
            community_id=hall.id, report_id=report.report_id, resolution=resolution, note=note
        ),
        metadata=hall.auth(by),
    )
    return reply


async def _appeal(hall: Hall, by: str, report: pb.Report) -> pb.Report:
    reply = await hall.stub.AppealReport(
        pb.AppealReportRequest(
            community_id=hall.id, report_id=report.report_id, statement="I was quoting someone"
        ),
        metadata=hall.auth(by),
    )
    appealed: pb.Report = reply.report
    return appealed


async def _queue(hall: Hall, by: str = "mod", **fields: Any) -> list[pb.Report]:
    reply = await hall.stub.ListReports(
        pb.ListReportsRequest(community_id=hall.id, **fields), metadata=hall.auth(by)
    )
    return list(reply.reports)


async def _published(members: RunningService, community_id: str) -> list[str]:
    async with members.deps.database.read() as session:
        rows = await session.execute(
            select(outbox.c.event_type)
            .where(outbox.c.community_id == community_id)
            .order_by(outbox.c.seq)
        )
        return [row.event_type.rsplit(".", 1)[-1] for row in rows]


async def test_moderator_mutes_on_a_report_and_an_admin_overturns_it_on_appeal(
    members: RunningService,
) -> None:
    hall = await _staff(members)
    post = str(uuid.uuid4())
    report = await _file(
        hall,
        "ann",
        target_user_id="troll",
        details="insults in the grammar thread",
        evidence=["https://example.org/shot.png", f"content:post:{post}"],
    )
    assert report.state == pb.REPORT_STATE_OPEN
    twice = await refused(_file(hall, "ann", target_user_id="troll"))
    assert twice.code() == grpc.StatusCode.ALREADY_EXISTS
    [queued] = await _queue(hall, state=pb.REPORT_STATE_OPEN)
    assert queued.reporter_user_id == "ann"
    assert list(queued.evidence) == ["https://example.org/shot.png", f"content:post:{post}"]
    assert [r.report_id for r in await _queue(hall, "ann", mine=True)] == [report.report_id]
    assert (await refused(_queue(hall, "troll"))).code() == grpc.StatusCode.PERMISSION_DENIED

    muted = await _resolve(hall, "mod", report, pb.RESOLUTION_MUTE, "second warning ignored")
    assert muted.membership.muted_until.ToDatetime().year == 9999
    assert muted.report.state == pb.REPORT_STATE_RESOLVED
    assert muted.report.decision.resolver_user_id == "mod"
    again = await refused(_resolve(hall, "mod2", report, pb.RESOLUTION_DISMISS))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION

    not_theirs = await refused(_appeal(hall, "ann", report))
    assert not_theirs.code() == grpc.StatusCode.NOT_FOUND
    appealed = await _appeal(hall, "troll", report)
    assert appealed.state == pb.REPORT_STATE_APPEALED
    assert appealed.appealed
    assert appealed.reporter_user_id == ""
    assert appealed.details == ""
    once = await refused(_appeal(hall, "troll", report))
    assert once.code() == grpc.StatusCode.FAILED_PRECONDITION
    for who in ("mod", "mod2"):
        denied = await refused(_resolve(hall, who, report, pb.RESOLUTION_OVERTURN))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    wrong_kind = await refused(_resolve(hall, "adm", report, pb.RESOLUTION_BAN))
    assert "resolution" in field_violations(wrong_kind)
    overturned = await _resolve(hall, "adm", report, pb.RESOLUTION_OVERTURN, "it was a quote")
    assert not overturned.membership.HasField("muted_until")
    assert overturned.report.appeal_decision.resolution == pb.RESOLUTION_OVERTURN
    assert overturned.report.state == pb.REPORT_STATE_RESOLVED

    audit = await hall.audit()
    assert ("report_mute", "mod", "troll") in audit
    assert ("appeal_overturn", "adm", "troll") in audit
    published = await _published(members, hall.id)
    tail = published[published.index("ReportFiled") :]
    assert tail == [
        "ReportFiled",
        "MemberMuted",
        "ReportResolved",
        "ReportAppealed",
        "MemberUnmuted",
        "ReportResolved",
    ]


async def test_reports_need_a_standing_member_a_target_and_well_formed_evidence(
    members: RunningService,
) -> None:
    hall = await _staff(members)
    await hall.moderate("mod", "troll", pb.MODERATION_ACTION_MUTE)
    # Reporting abuse stays possible while muted.
    from_muted = await _file(hall, "troll", target_user_id="ann", reason=pb.REPORT_REASON_SPAM)
    assert from_muted.reporter_user_id == "troll"
    await hall.moderate("mod", "troll", pb.MODERATION_ACTION_BAN)
    banned = await refused(_file(hall, "troll", target_user_id="mod"))
    assert banned.code() == grpc.StatusCode.PERMISSION_DENIED
    outsider = await refused(_file(hall, "stranger", target_user_id="ann"))
    assert outsider.code() == grpc.StatusCode.PERMISSION_DENIED
    ghost = await refused(_file(hall, "ann", target_user_id="ghost"))
    assert ghost.code() == grpc.StatusCode.NOT_FOUND

    cases: list[tuple[dict[str, Any], str]] = [
        ({"target_user_id": "ann"}, "target_user_id"),
        ({"target_user_id": "mod", "reason": pb.REPORT_REASON_OTHER}, "details"),
        ({"target_user_id": "mod", "details": "x" * 2001}, "details"),
        ({"target_user_id": "mod", "evidence": ["http://plain.example"]}, "evidence[0]"),
        ({"target_user_id": "mod", "evidence": ["https://e.example"] * 11}, "evidence"),
        ({}, "target_user_id"),
        (
            {
                "target_user_id": "mod",
                "target": pb.ContentRef(service="content", kind="post", id=str(uuid.uuid4())),
            },
            "target_user_id",
        ),
        (
            {"target": pb.ContentRef(service="billing", kind="post", id=str(uuid.uuid4()))},
            "target.service",
        ),
        (
            {"target": pb.ContentRef(service="content", kind="comment", id=str(uuid.uuid4()))},
            "target.kind",
        ),
        ({"target": await post_known(members, hall.id, "ann")}, "target.id"),
        ({"target_user_id": "mod", "reason": pb.REPORT_REASON_UNSPECIFIED}, "reason"),
    ]
    for fields, field in cases:
        error = await refused(_file(hall, "ann", **fields))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert field in field_violations(error), (fields, field_violations(error))
    assert [r.reporter_user_id for r in await _queue(hall)] == ["troll"]


async def test_a_report_cannot_ban_above_the_resolvers_rank_and_appeals_need_an_author(
    members: RunningService,
) -> None:
    hall = await _staff(members)
    about_admin = await _file(hall, "ann", target=await post_known(members, hall.id, "adm"))
    # A post whose author's data was erased stays the community's, under no author.
    post = await post_known(members, hall.id, "gone")
    async with members.deps.database.write() as session:
        await PostRepository(session).forget_author(hall.id, "gone")
    above = await refused(_resolve(hall, "mod", about_admin, pb.RESOLUTION_BAN))
    assert above.code() == grpc.StatusCode.PERMISSION_DENIED
    [still_open] = await _queue(hall, state=pb.REPORT_STATE_OPEN)
    assert still_open.report_id == about_admin.report_id

    anonymous = await _file(hall, "troll", target=post, reason=pb.REPORT_REASON_SPAM)
    nobody = await refused(_resolve(hall, "mod", anonymous, pb.RESOLUTION_WARN))
    assert nobody.code() == grpc.StatusCode.FAILED_PRECONDITION
    await _resolve(hall, "mod", anonymous, pb.RESOLUTION_DISMISS)

    warned = await _resolve(hall, "olga", about_admin, pb.RESOLUTION_WARN, "keep it civil")
    assert not warned.HasField("membership")
    await _appeal(hall, "adm", about_admin)
    # The owner decided: nobody in the community outranks them, only an operator does.
    owner_again = await refused(_resolve(hall, "olga", about_admin, pb.RESOLUTION_UPHOLD))
    assert owner_again.code() == grpc.StatusCode.PERMISSION_DENIED
    upheld = await hall.stub.ResolveReport(
        pb.ResolveReportRequest(
            community_id=hall.id,
            report_id=about_admin.report_id,
            resolution=pb.RESOLUTION_UPHOLD,
            note="the warning stands",
        ),
        metadata=members.auth("support", operator=True),
    )
    assert upheld.report.appeal_decision.resolution == pb.RESOLUTION_UPHOLD

    banned = await _file(hall, "ann", target_user_id="troll")
    decided = await hall.stub.ResolveReport(
        pb.ResolveReportRequest(
            community_id=hall.id,
            report_id=banned.report_id,
            resolution=pb.RESOLUTION_BAN,
            note="spam again",
        ),
        metadata=hall.auth("mod"),
    )
    assert not decided.membership.active
    assert (await refused(hall.join("troll"))).code() == grpc.StatusCode.PERMISSION_DENIED
    # A banned member is no longer a member and may still appeal.
    await _appeal(hall, "troll", banned)
    lifted = await _resolve(hall, "adm", banned, pb.RESOLUTION_OVERTURN, "wrong person")
    assert not lifted.membership.HasField("banned_until")
    assert (await hall.join("troll")).membership.active


async def test_report_events_carry_ids_and_no_text(members: RunningService) -> None:
    hall = await _staff(members)
    report = await _file(hall, "ann", target_user_id="troll", details="private words")
    async with members.deps.database.read() as session:
        payload = await session.scalar(
            select(outbox.c.payload).where(
                outbox.c.community_id == hall.id, outbox.c.event_type.endswith("ReportFiled")
            )
        )
    assert payload is not None
    filed = events.ReportFiled.FromString(payload)
    assert (filed.report_id, filed.reporter_user_id, filed.target_user_id) == (
        report.report_id,
        "ann",
        "troll",
    )
    assert filed.reason == pb.REPORT_REASON_HARASSMENT
    assert b"private words" not in payload
