"""Running a community: applicants reviewed by moderators, roles given and taken by the
right people, ownership handed over."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service


class Club:
    """One community and helpers to act in it as someone."""

    def __init__(self, members: RunningService, community: pb.Community) -> None:
        self.members = members
        self.stub = pb_grpc.MembersServiceStub(members.channel)
        self.community = community
        self.id = community.id

    async def join(self, user: str, answers: list[str] | None = None) -> pb.JoinCommunityResponse:
        reply: pb.JoinCommunityResponse = await self.stub.JoinCommunity(
            pb.JoinCommunityRequest(community_id=self.id, answers=answers or []),
            metadata=self.members.auth(user),
        )
        return reply

    async def set_role(self, actor: str, user: str, role: pb.Role.ValueType) -> pb.Membership:
        reply = await self.stub.ChangeRole(
            pb.ChangeRoleRequest(community_id=self.id, user_id=user, role=role),
            metadata=self.members.auth(actor),
        )
        membership: pb.Membership = reply.membership
        return membership

    async def refused(self, call: object) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call  # type: ignore[misc]
        return caught.value


async def _club(members: RunningService, owner: str = "olga", **fields: object) -> Club:
    stub = pb_grpc.MembersServiceStub(members.channel)
    reply = await stub.CreateCommunity(
        pb.CreateCommunityRequest(
            name=f"Club {uuid.uuid4().hex[:8]}",
            topic="exams",
            **fields,  # type: ignore[arg-type]
        ),
        metadata=members.auth(owner),
    )
    return Club(members, reply.community)


async def _make_moderator(club: Club, user: str) -> None:
    await club.join(user)
    await club.set_role(club.community.owner_user_id, user, pb.ROLE_MODERATOR)


async def test_moderator_approves_an_applicant_who_answered_the_questions(
    members: RunningService,
) -> None:
    club = await _club(
        members,
        join_questions=["Which exam?", "Hours per week?"],
    )
    await _make_moderator(club, "mia")
    await club.stub.UpdateCommunity(
        pb.UpdateCommunityRequest(
            community=pb.Community(id=club.id, join_policy=pb.JOIN_POLICY_APPROVAL),
            update_mask=FieldMask(paths=["join_policy"]),
        ),
        metadata=members.auth("olga"),
    )
    missing = await club.refused(club.join("ana", ["IELTS"]))
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "answers" in field_violations(missing)

    applied = await club.join("ana", ["IELTS", "10"])
    assert not applied.HasField("membership")
    assert applied.join_request.state == pb.JOIN_REQUEST_STATE_PENDING
    again = await club.refused(club.join("ana", ["IELTS", "10"]))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS

    queue = await club.stub.ListJoinRequests(
        pb.ListJoinRequestsRequest(community_id=club.id), metadata=members.auth("mia")
    )
    assert [(r.user_id, list(r.answers)) for r in queue.join_requests] == [("ana", ["IELTS", "10"])]
    reviewed = await club.stub.ReviewJoinRequest(
        pb.ReviewJoinRequestRequest(community_id=club.id, user_id="ana", approve=True),
        metadata=members.auth("mia"),
    )
    assert reviewed.join_request.state == pb.JOIN_REQUEST_STATE_APPROVED
    assert reviewed.join_request.reviewer_user_id == "mia"
    assert reviewed.membership.role == pb.ROLE_MEMBER
    queue = await club.stub.ListJoinRequests(
        pb.ListJoinRequestsRequest(community_id=club.id), metadata=members.auth("mia")
    )
    assert list(queue.join_requests) == []
    twice = await club.refused(
        club.stub.ReviewJoinRequest(
            pb.ReviewJoinRequestRequest(community_id=club.id, user_id="ana", approve=True),
            metadata=members.auth("mia"),
        )
    )
    assert twice.code() == grpc.StatusCode.NOT_FOUND


async def test_rejection_needs_a_reason_and_the_applicant_may_ask_again(
    members: RunningService,
) -> None:
    club = await _club(members, join_policy=pb.JOIN_POLICY_APPROVAL)
    await club.join("ben")
    no_reason = await club.refused(
        club.stub.ReviewJoinRequest(
            pb.ReviewJoinRequestRequest(community_id=club.id, user_id="ben", approve=False),
            metadata=members.auth("olga"),
        )
    )
    assert "reason" in field_violations(no_reason)
    rejected = await club.stub.ReviewJoinRequest(
        pb.ReviewJoinRequestRequest(
            community_id=club.id, user_id="ben", approve=False, reason="Please read the rules first"
        ),
        metadata=members.auth("olga"),
    )
    assert rejected.join_request.state == pb.JOIN_REQUEST_STATE_REJECTED
    assert rejected.join_request.reason == "Please read the rules first"
    assert not rejected.HasField("membership")
    reapplied = await club.join("ben")
    assert reapplied.join_request.state == pb.JOIN_REQUEST_STATE_PENDING


async def test_plain_members_cannot_review_or_see_the_queue(members: RunningService) -> None:
    club = await _club(members, join_policy=pb.JOIN_POLICY_APPROVAL)
    await club.join("cat")
    for call in (
        club.stub.ListJoinRequests(
            pb.ListJoinRequestsRequest(community_id=club.id), metadata=members.auth("cat")
        ),
        club.stub.ReviewJoinRequest(
            pb.ReviewJoinRequestRequest(community_id=club.id, user_id="cat", approve=True),
            metadata=members.auth("cat"),
        ),
    ):
        error = await club.refused(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "moderator" in (error.details() or "")


async def test_admins_set_moderators_and_only_the_owner_makes_admins(
    members: RunningService,
) -> None:
    club = await _club(members)
    for user in ("ada", "dan", "eve"):
        await club.join(user)
    promoted = await club.set_role("olga", "ada", pb.ROLE_ADMIN)
    assert promoted.role == pb.ROLE_ADMIN
    assert promoted.version == 2
    moderator = await club.set_role("ada", "dan", pb.ROLE_MODERATOR)
    assert moderator.role == pb.ROLE_MODERATOR

    not_owner = await club.refused(club.set_role("ada", "eve", pb.ROLE_ADMIN))
    assert not_owner.code() == grpc.StatusCode.PERMISSION_DENIED
    own = await club.refused(club.set_role("ada", "ada", pb.ROLE_MEMBER))
    assert own.code() == grpc.StatusCode.FAILED_PRECONDITION
    owner = await club.refused(club.set_role("ada", "olga", pb.ROLE_MEMBER))
    assert owner.code() == grpc.StatusCode.FAILED_PRECONDITION
    not_admin = await club.refused(club.set_role("dan", "eve", pb.ROLE_MODERATOR))
    assert not_admin.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = await club.refused(club.set_role("olga", "eve", pb.ROLE_OWNER))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "role" in field_violations(bad)
    stranger = await club.refused(club.set_role("olga", "nobody", pb.ROLE_MODERATOR))
    assert stranger.code() == grpc.StatusCode.NOT_FOUND


async def test_owner_hands_the_community_over_and_becomes_an_admin(
    members: RunningService,
) -> None:
    club = await _club(members)
    await club.join("fay")
    denied = await club.refused(
        club.stub.TransferOwnership(
            pb.TransferOwnershipRequest(community_id=club.id, new_owner_user_id="fay"),
            metadata=members.auth("fay"),
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    outsider = await club.refused(
        club.stub.TransferOwnership(
            pb.TransferOwnershipRequest(community_id=club.id, new_owner_user_id="ghost"),
            metadata=members.auth("olga"),
        )
    )
    assert outsider.code() == grpc.StatusCode.NOT_FOUND
    moved = await club.stub.TransferOwnership(
        pb.TransferOwnershipRequest(community_id=club.id, new_owner_user_id="fay"),
        metadata=members.auth("olga"),
    )
    assert moved.community.owner_user_id == "fay"
    # The old owner may leave now; the new one may not.
    await club.stub.LeaveCommunity(
        pb.LeaveCommunityRequest(community_id=club.id), metadata=members.auth("olga")
    )
    stuck = await club.refused(
        club.stub.LeaveCommunity(
            pb.LeaveCommunityRequest(community_id=club.id), metadata=members.auth("fay")
        )
    )
    assert stuck.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _moderate(
    club: Club,
    actor: str,
    user: str,
    action: pb.ModerationAction.ValueType,
    *,
    reason: str = "breaks rule 2",
    until: datetime | None = None,
) -> pb.Membership:
    request = pb.ModerateMemberRequest(
        community_id=club.id, user_id=user, action=action, reason=reason
    )
    if until is not None:
        request.until.FromDatetime(until)
    reply = await club.stub.ModerateMember(request, metadata=club.members.auth(actor))
    membership: pb.Membership = reply.membership
    return membership


async def test_banned_user_is_out_and_cannot_come_back_until_unbanned(
    members: RunningService,
) -> None:
    club = await _club(members)
    await _make_moderator(club, "mod")
    await club.join("troll")
    banned = await _moderate(club, "mod", "troll", pb.MODERATION_ACTION_BAN)
    assert not banned.active
    assert banned.banned_until.ToDatetime().year == 9999
    error = await club.refused(club.join("troll"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "banned" in (error.details() or "")
    # A ban also keeps out someone who never joined.
    await _moderate(club, "mod", "spammer", pb.MODERATION_ACTION_BAN)
    assert (await club.refused(club.join("spammer"))).code() == grpc.StatusCode.PERMISSION_DENIED

    await _moderate(club, "mod", "troll", pb.MODERATION_ACTION_UNBAN, reason="")
    rejoined = await club.join("troll")
    assert rejoined.membership.active
    assert rejoined.membership.version == banned.version + 2


async def test_ban_with_an_end_lapses_by_itself(members: RunningService) -> None:
    club = await _club(members)
    await club.join("kid")
    # Far enough ahead that a slow machine still bans before the end.
    until = datetime.now(UTC) + timedelta(seconds=3)
    await _moderate(
        club,
        "olga",
        "kid",
        pb.MODERATION_ACTION_BAN,
        until=until,
    )
    assert (await club.refused(club.join("kid"))).code() == grpc.StatusCode.PERMISSION_DENIED
    await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.2)
    assert (await club.join("kid")).membership.active


async def test_moderators_act_only_below_their_rank_and_bad_input_changes_nothing(
    members: RunningService,
) -> None:
    club = await _club(members)
    await _make_moderator(club, "mod")
    await _make_moderator(club, "mod2")
    await club.join("amy")
    same_rank = await club.refused(_moderate(club, "mod", "mod2", pb.MODERATION_ACTION_REMOVE))
    assert same_rank.code() == grpc.StatusCode.PERMISSION_DENIED
    owner = await club.refused(_moderate(club, "mod", "olga", pb.MODERATION_ACTION_BAN))
    assert owner.code() == grpc.StatusCode.PERMISSION_DENIED
    member = await club.refused(_moderate(club, "amy", "mod", pb.MODERATION_ACTION_MUTE))
    assert member.code() == grpc.StatusCode.PERMISSION_DENIED
    no_reason = await club.refused(
        _moderate(club, "mod", "amy", pb.MODERATION_ACTION_REMOVE, reason="")
    )
    assert "reason" in field_violations(no_reason)
    past = await club.refused(
        _moderate(
            club, "mod", "amy", pb.MODERATION_ACTION_MUTE, until=datetime(2020, 1, 1, tzinfo=UTC)
        )
    )
    assert "until" in field_violations(past)
    removed = await _moderate(club, "mod", "amy", pb.MODERATION_ACTION_REMOVE)
    assert not removed.active
    assert (await club.join("amy")).membership.active  # removal is not a ban


async def test_mute_keeps_membership_and_survives_leaving_and_rejoining(
    members: RunningService,
) -> None:
    club = await _club(members)
    await club.join("loud")
    muted = await _moderate(club, "olga", "loud", pb.MODERATION_ACTION_MUTE)
    assert muted.active
    assert muted.muted_until.ToDatetime().year == 9999
    await club.stub.LeaveCommunity(
        pb.LeaveCommunityRequest(community_id=club.id), metadata=members.auth("loud")
    )
    back = await club.join("loud")
    assert back.membership.muted_until.ToDatetime().year == 9999
    unmuted = await _moderate(club, "olga", "loud", pb.MODERATION_ACTION_UNMUTE, reason="")
    assert not unmuted.HasField("muted_until")


async def test_admins_read_every_moderator_action_in_the_audit_log(
    members: RunningService,
) -> None:
    club = await _club(members)
    await _make_moderator(club, "mod")
    await club.join("ivy")
    await _moderate(club, "mod", "ivy", pb.MODERATION_ACTION_MUTE, reason="off-topic links")
    await _moderate(club, "mod", "ivy", pb.MODERATION_ACTION_UNMUTE, reason="")
    entries: list[pb.AuditEntry] = []
    token = ""
    while True:
        page = await club.stub.ListAuditLog(
            pb.ListAuditLogRequest(community_id=club.id, page_size=2, page_token=token),
            metadata=members.auth("olga"),
        )
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    assert [(e.action, e.actor_user_id, e.target_user_id) for e in entries] == [
        ("unmute", "mod", "ivy"),
        ("mute", "mod", "ivy"),
        ("change_role", "olga", "mod"),
    ]
    assert entries[1].note == "off-topic links"
    denied = await club.refused(
        club.stub.ListAuditLog(
            pb.ListAuditLogRequest(community_id=club.id), metadata=members.auth("mod")
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
