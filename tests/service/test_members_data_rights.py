"""A member's data rights: an export of everything held about them in a community, and an
erasure that removes what they wrote but keeps a ban or mute in force."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from services.members.store.tables import outbox
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import recognition_service_pb2 as rpb
from studyhall.members.v1 import recognition_service_pb2_grpc as rpb_grpc
from tests.support.errors import field_violations
from tests.support.members import Hall, refused
from tests.support.services import RunningService

pytestmark = pytest.mark.service


async def _export(hall: Hall, caller: str, **fields: Any) -> dict[str, Any]:
    reply = await hall.stub.ExportMyData(
        pb.ExportMyDataRequest(community_id=hall.id, **fields), metadata=hall.auth(caller)
    )
    assert reply.content_type == "application/json"
    document: dict[str, Any] = json.loads(reply.document)
    return document


async def _erase(hall: Hall, caller: str, **fields: Any) -> pb.EraseMyDataResponse:
    fields.setdefault("confirm", True)
    reply: pb.EraseMyDataResponse = await hall.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=hall.id, **fields), metadata=hall.auth(caller)
    )
    return reply


async def _busy_member(members: RunningService) -> tuple[Hall, str]:
    """ann: applied with answers, accepted rules, moderates, made an invite, filed a report,
    was warned on troll's report and appealed. Returns the hall and the report about her."""
    hall = await Hall.create(
        members, join_policy=pb.JOIN_POLICY_APPROVAL, join_questions=["Which exam?"]
    )
    await hall.stub.UpdateRules(
        pb.UpdateRulesRequest(community_id=hall.id, rules=[pb.Rule(title="Be kind")]),
        metadata=hall.auth("olga"),
    )
    for user, answer in (("ann", "IELTS 7.5 in May"), ("troll", "none")):
        await hall.join(user, answers=[answer], accepted_rules_version=1)
        await hall.stub.ReviewJoinRequest(
            pb.ReviewJoinRequestRequest(community_id=hall.id, user_id=user, approve=True),
            metadata=hall.auth("olga"),
        )
    await hall.promote("ann", pb.ROLE_MODERATOR)
    await hall.stub.CreateInvite(
        pb.CreateInviteRequest(community_id=hall.id, max_uses=3), metadata=hall.auth("ann")
    )
    await hall.stub.FileReport(
        pb.FileReportRequest(
            community_id=hall.id,
            target_user_id="troll",
            reason=pb.REPORT_REASON_OTHER,
            details="my secret reasons",
            evidence=["https://example.org/ann-evidence"],
        ),
        metadata=hall.auth("ann"),
    )
    about = await hall.stub.FileReport(
        pb.FileReportRequest(
            community_id=hall.id, target_user_id="ann", reason=pb.REPORT_REASON_SPAM
        ),
        metadata=hall.auth("troll"),
    )
    report_id = about.report.report_id
    await hall.stub.ResolveReport(
        pb.ResolveReportRequest(
            community_id=hall.id,
            report_id=report_id,
            resolution=pb.RESOLUTION_WARN,
            note="fewer links please",
        ),
        metadata=hall.auth("olga"),
    )
    await hall.stub.AppealReport(
        pb.AppealReportRequest(
            community_id=hall.id, report_id=report_id, statement="my appeal words"
        ),
        metadata=hall.auth("ann"),
    )
    return hall, report_id


async def test_member_exports_everything_held_about_them_but_not_who_reported_them(
    members: RunningService,
) -> None:
    hall, report_id = await _busy_member(members)
    document = await _export(hall, "ann")
    assert document["user_id"] == "ann"
    assert document["membership"]["role"] == "moderator"
    assert document["membership"]["accepted_rules_version"] == 1
    assert document["join_request"]["answers"] == ["IELTS 7.5 in May"]
    [filed] = document["reports_filed"]
    assert filed["details"] == "my secret reasons"
    assert filed["evidence"] == ["https://example.org/ann-evidence"]
    [about] = document["reports_about_me"]
    assert about["report_id"] == report_id
    assert about["decision"]["note"] == "fewer links please"
    assert about["appeal"]["statement"] == "my appeal words"
    assert "troll" not in json.dumps(about)
    [invite] = document["invites_created"]
    assert invite["max_uses"] == 3
    assert {entry["action"] for entry in document["moderation_of_me"]} >= {
        "approve_join_request",
        "change_role",
        "report_warn",
    }

    support = await hall.stub.ExportMyData(
        pb.ExportMyDataRequest(community_id=hall.id, user_id="ann"),
        metadata=members.auth("support", operator=True),
    )
    assert json.loads(support.document)["join_request"]["answers"] == ["IELTS 7.5 in May"]
    nosy = await refused(_export(hall, "troll", user_id="ann"))
    assert nosy.code() == grpc.StatusCode.PERMISSION_DENIED
    stranger = await refused(_export(hall, "stranger"))
    assert stranger.code() == grpc.StatusCode.NOT_FOUND


async def test_erasure_removes_what_they_wrote_keeps_the_mute_and_the_audit_trail(
    members: RunningService,
) -> None:
    hall, report_id = await _busy_member(members)
    await hall.moderate("olga", "ann", pb.MODERATION_ACTION_MUTE)
    unconfirmed = await refused(_erase(hall, "ann", confirm=False))
    assert "confirm" in field_violations(unconfirmed)
    owner = await refused(_erase(hall, "olga"))
    assert owner.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "transfer ownership" in (owner.details() or "")

    kept = (await _erase(hall, "ann")).membership
    assert not kept.active
    assert kept.role == pb.ROLE_MEMBER
    assert kept.muted_until.ToDatetime().year == 9999

    document = await _export(hall, "ann")
    assert document["join_request"] is None
    assert document["reports_filed"][0]["details"] == ""
    assert document["reports_filed"][0]["evidence"] == []
    assert document["reports_about_me"][0]["appeal"]["statement"] == ""
    assert document["invites_created"][0]["revoke_time"] is not None
    assert document["membership"]["muted_until"] is not None
    reports = await hall.stub.ListReports(
        pb.ListReportsRequest(community_id=hall.id), metadata=hall.auth("olga")
    )
    by_id = {report.report_id: report for report in reports.reports}
    assert by_id[report_id].decision.note == "fewer links please"
    invites = await hall.stub.ListInvites(
        pb.ListInvitesRequest(community_id=hall.id), metadata=hall.auth("olga")
    )
    assert not any(invite.usable for invite in invites.invites)
    assert ("erase_member_data", "ann", "ann") in await hall.audit()
    async with members.deps.database.read() as session:
        types = (
            await session.scalars(
                select(outbox.c.event_type)
                .where(outbox.c.community_id == hall.id)
                .order_by(outbox.c.seq)
            )
        ).all()
    assert [t.rsplit(".", 1)[-1] for t in types[-2:]] == ["MemberLeft", "MemberErased"]

    # Coming back is a fresh start, and the mute is still there.
    await hall.join("ann", answers=["again"], accepted_rules_version=1)
    back = await hall.stub.ReviewJoinRequest(
        pb.ReviewJoinRequestRequest(community_id=hall.id, user_id="ann", approve=True),
        metadata=hall.auth("olga"),
    )
    assert back.membership.muted_until.ToDatetime().year == 9999


async def test_erasure_is_no_way_round_a_ban_and_operators_erase_on_request(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    await hall.join("troll")
    await hall.moderate("olga", "troll", pb.MODERATION_ACTION_BAN)
    await _erase(hall, "troll")
    assert (await refused(hall.join("troll"))).code() == grpc.StatusCode.PERMISSION_DENIED

    await hall.join("amy")
    other = await refused(_erase(hall, "troll", user_id="amy"))
    assert other.code() == grpc.StatusCode.PERMISSION_DENIED
    erased = await hall.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=hall.id, user_id="amy", confirm=True),
        metadata=members.auth("support", operator=True),
    )
    assert not erased.membership.active
    assert ("erase_member_data", "support", "amy") in await hall.audit()
    missing = await refused(
        hall.stub.EraseMyData(
            pb.EraseMyDataRequest(community_id=str(uuid.uuid4()), confirm=True),
            metadata=hall.auth("amy"),
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_points_badges_and_kudos_are_exported_and_erased(members: RunningService) -> None:
    hall = await Hall.create(members)
    for user in ("ann", "bob"):
        await hall.join(user)
    recognition = rpb_grpc.RecognitionServiceStub(members.channel)

    async def award(giver: str, user: str, amount: int, reason: str = "") -> None:
        await recognition.AwardPoints(
            rpb.AwardPointsRequest(
                community_id=hall.id, user_id=user, amount=amount, reason=reason
            ),
            metadata=hall.auth(giver),
        )

    async def board() -> list[str]:
        reply = await recognition.GetLeaderboard(
            rpb.GetLeaderboardRequest(community_id=hall.id, window=rpb.LEADERBOARD_WINDOW_ALL_TIME),
            metadata=hall.auth("olga"),
        )
        return [entry.user_id for entry in reply.entries]

    await award("olga", "ann", 120, "ran the mock exam")
    await award("ann", "bob", 1)
    await award("bob", "ann", 1)
    assert (await board())[0] == "ann"

    document = await _export(hall, "ann")
    assert sorted(entry["reason"] for entry in document["points_ledger"]) == ["kudos", "manual"]
    assert "points_100" in {badge["code"] for badge in document["badges"]}
    assert document["standing"]["points_total"] == 121
    assert [kudos["to_user_id"] for kudos in document["kudos_given"]] == ["bob"]

    await _erase(hall, "ann")
    document = await _export(hall, "ann")
    assert document["points_ledger"] == []
    assert document["badges"] == []
    assert document["standing"] is None
    assert document["kudos_given"] == []
    assert "ann" not in await board()

    # The kudos ann gave stay bob's, without her name.
    ledger = await recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=hall.id), metadata=hall.auth("bob")
    )
    [kudos] = ledger.entries
    assert (kudos.amount, kudos.awarded_by_user_id) == (1, "")
    assert "ann" not in kudos.source_event_id
    standing = await recognition.GetStanding(
        rpb.GetStandingRequest(community_id=hall.id), metadata=hall.auth("bob")
    )
    assert standing.standing.points_total == 1
