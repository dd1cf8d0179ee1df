"""Invite links: a code that opens an invite-only or private community to whoever holds it,
for a while and a number of times, counted exactly even when many people use it at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from studyhall.members.v1 import members_service_pb2 as pb
from tests.support.errors import field_violations
from tests.support.members import Hall, refused
from tests.support.services import RunningService

pytestmark = pytest.mark.service


async def _invite(hall: Hall, by: str = "olga", **fields: Any) -> pb.CreateInviteResponse:
    reply: pb.CreateInviteResponse = await hall.stub.CreateInvite(
        pb.CreateInviteRequest(community_id=hall.id, **fields), metadata=hall.auth(by)
    )
    return reply


async def _invites(hall: Hall, by: str = "olga") -> list[pb.Invite]:
    reply = await hall.stub.ListInvites(
        pb.ListInvitesRequest(community_id=hall.id), metadata=hall.auth(by)
    )
    return list(reply.invites)


async def test_invite_opens_a_private_invite_only_community_until_it_is_used_up(
    members: RunningService,
) -> None:
    hall = await Hall.create(
        members, visibility=pb.VISIBILITY_PRIVATE, join_policy=pb.JOIN_POLICY_INVITE_ONLY
    )
    await hall.join("mod", invite_code=(await _invite(hall)).code)
    await hall.promote("mod", pb.ROLE_MODERATOR)
    created = await _invite(hall, "mod", max_uses=2)
    assert len(created.code) >= 32
    assert created.invite.code_prefix == created.code[:4]
    assert created.invite.usable
    assert created.invite.max_uses == 2
    expires = created.invite.expire_time.ToDatetime(tzinfo=UTC)
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    # Without the code the community does not exist for an outsider.
    hidden = await refused(hall.join("ann"))
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    joined = await hall.join("ann", invite_code=created.code)
    assert joined.membership.active
    assert joined.membership.role == pb.ROLE_MEMBER
    await hall.join("bob", invite_code=created.code)
    used_up = await refused(hall.join("cid", invite_code=created.code))
    assert used_up.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "used up" in (used_up.details() or "")

    listed = {invite.invite_id: invite for invite in await _invites(hall, "mod")}
    mine = listed[created.invite.invite_id]
    assert (mine.uses, mine.max_uses, mine.usable, mine.creator_user_id) == (2, 2, False, "mod")
    # The usable one (made by olga, unlimited) comes first.
    assert [invite.usable for invite in await _invites(hall)] == [True, False]


async def test_unknown_code_reveals_no_private_community(members: RunningService) -> None:
    hall = await Hall.create(members, visibility=pb.VISIBILITY_PRIVATE)
    await _invite(hall)
    guess = "A" * 32
    private = await refused(hall.join("eve", invite_code=guess))
    missing = await refused(
        hall.stub.JoinCommunity(
            pb.JoinCommunityRequest(community_id=str(uuid.uuid4()), invite_code=guess),
            metadata=hall.auth("eve"),
        )
    )
    assert private.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    assert private.details() == missing.details()
    malformed = await refused(hall.join("eve", invite_code="not a code"))
    assert "invite_code" in field_violations(malformed)


async def test_invite_skips_review_and_revoked_or_expired_invites_and_bans_keep_people_out(
    members: RunningService,
) -> None:
    hall = await Hall.create(members, join_policy=pb.JOIN_POLICY_APPROVAL)
    code = (await _invite(hall)).code
    direct = await hall.join("amy", invite_code=code)
    assert direct.membership.active
    assert not direct.HasField("join_request")

    await hall.moderate("olga", "troll", pb.MODERATION_ACTION_BAN)
    banned = await refused(hall.join("troll", invite_code=code))
    assert banned.code() == grpc.StatusCode.PERMISSION_DENIED

    # Far enough ahead that a slow machine still creates it before it expires.
    ends = _in(seconds=3)
    short = await _invite(hall, expire_time=ends)
    await asyncio.sleep(max(0.0, (ends.ToDatetime(tzinfo=UTC) - datetime.now(UTC)).total_seconds()))
    expired = await refused(hall.join("ben", invite_code=short.code))
    assert expired.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in (expired.details() or "")

    invite_id = (await _invite(hall)).invite.invite_id
    revoke = pb.RevokeInviteRequest(community_id=hall.id, invite_id=invite_id)
    reply = await hall.stub.RevokeInvite(revoke, metadata=hall.auth("olga"))
    assert reply.invite.HasField("revoke_time")
    assert not reply.invite.usable
    again = await refused(hall.stub.RevokeInvite(revoke, metadata=hall.auth("olga")))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    actions = [action for action, _, _ in await hall.audit()]
    assert actions.count("create_invite") == 3
    assert actions.count("revoke_invite") == 1


async def test_invites_are_for_moderators_and_bad_limits_change_nothing(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    await hall.join("amy")
    denied = await refused(_invite(hall, "amy"))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    listing = await refused(_invites(hall, "amy"))
    assert listing.code() == grpc.StatusCode.PERMISSION_DENIED
    for fields, field in (
        ({"max_uses": 10_001}, "max_uses"),
        ({"max_uses": -1}, "max_uses"),
        ({"expire_time": _in(seconds=-5)}, "expire_time"),
        ({"expire_time": _in(days=91)}, "expire_time"),
    ):
        error = await refused(_invite(hall, **fields))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(error)
    assert await _invites(hall) == []
    kept = await _invite(hall, expire_time=_in(days=90, seconds=-5), max_uses=10_000)
    assert kept.invite.max_uses == 10_000


async def test_twenty_people_racing_for_five_uses_get_exactly_five_seats(
    members: RunningService,
) -> None:
    hall = await Hall.create(members, join_policy=pb.JOIN_POLICY_INVITE_ONLY)
    code = (await _invite(hall, max_uses=5)).code
    outcomes = await asyncio.gather(
        *(hall.join(f"racer-{n}", invite_code=code) for n in range(20)), return_exceptions=True
    )
    admitted = [o for o in outcomes if isinstance(o, pb.JoinCommunityResponse)]
    turned_away = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(admitted) == 5
    assert len(turned_away) == 15
    assert {error.code() for error in turned_away} == {grpc.StatusCode.FAILED_PRECONDITION}
    [invite] = await _invites(hall)
    assert invite.uses == 5
    roster = await hall.stub.ListMembers(
        pb.ListMembersRequest(community_id=hall.id, page_size=100), metadata=hall.auth("olga")
    )
    assert len(roster.members) == 6  # the owner and the five


def _in(**delta: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(**delta))
    return stamp
