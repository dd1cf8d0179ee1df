"""Rules a community keeps in versions: joining means accepting the current one, a new
version makes every acceptance outdated, and moderators see who has not caught up."""

from __future__ import annotations

import grpc
import pytest

from studyhall.members.v1 import members_service_pb2 as pb
from tests.support.errors import field_violations
from tests.support.members import Hall, refused
from tests.support.services import RunningService

pytestmark = pytest.mark.service


async def _set_rules(hall: Hall, titles: list[str], by: str = "olga", etag: str = "") -> pb.Rules:
    reply = await hall.stub.UpdateRules(
        pb.UpdateRulesRequest(
            community_id=hall.id,
            rules=[pb.Rule(title=title, body=f"{title}, always.") for title in titles],
            etag=etag,
        ),
        metadata=hall.auth(by),
    )
    rules: pb.Rules = reply.rules
    return rules


async def _pending(hall: Hall, by: str = "olga") -> list[str]:
    reply = await hall.stub.ListMembers(
        pb.ListMembersRequest(community_id=hall.id, rules_pending=True), metadata=hall.auth(by)
    )
    return [member.user_id for member in reply.members]


async def _accept(hall: Hall, user: str, version: int) -> pb.Membership:
    reply = await hall.stub.AcceptRules(
        pb.AcceptRulesRequest(community_id=hall.id, version=version), metadata=hall.auth(user)
    )
    membership: pb.Membership = reply.membership
    return membership


async def test_joining_needs_the_current_rules_and_a_new_version_outdates_every_acceptance(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    await hall.join("early")  # before there were any rules
    first = await _set_rules(hall, ["Be kind", "Stay on topic"], etag=hall.community.etag)
    assert first.version == 1
    assert [rule.title for rule in first.rules] == ["Be kind", "Stay on topic"]

    unread = await refused(hall.join("ann"))
    assert unread.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "accepted_rules_version=1" in (unread.details() or "")
    joined = await hall.join("ann", accepted_rules_version=1)
    assert joined.membership.rules_accepted
    assert joined.membership.accepted_rules_version == 1
    assert await _pending(hall) == ["olga", "early"]

    second = await _set_rules(hall, ["Be kind", "No spam"])
    assert second.version == 2
    assert sorted(await _pending(hall)) == ["ann", "early", "olga"]
    old = await refused(_accept(hall, "ann", 1))
    assert old.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "version 2" in (old.details() or "")
    accepted = await _accept(hall, "ann", 2)
    assert accepted.rules_accepted
    assert accepted.accepted_rules_version == 2
    assert "ann" not in await _pending(hall)

    # Both versions stay readable; 0 is the current one.
    current = await hall.stub.GetRules(
        pb.GetRulesRequest(community_id=hall.id), metadata=hall.auth("anyone")
    )
    assert current.rules.version == 2
    assert [r.title for r in current.rules.rules] == ["Be kind", "No spam"]
    earlier = await hall.stub.GetRules(
        pb.GetRulesRequest(community_id=hall.id, version=1), metadata=hall.auth("anyone")
    )
    assert [r.title for r in earlier.rules.rules] == ["Be kind", "Stay on topic"]
    missing = await refused(
        hall.stub.GetRules(
            pb.GetRulesRequest(community_id=hall.id, version=3), metadata=hall.auth("ann")
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_rules_change_with_the_current_etag_by_admins_only(members: RunningService) -> None:
    hall = await Hall.create(members)
    for user in ("mod", "adm"):
        await hall.join(user)
    await hall.promote("mod", pb.ROLE_MODERATOR)
    await hall.promote("adm", pb.ROLE_ADMIN)
    moderator = await refused(_set_rules(hall, ["Mine"], by="mod"))
    assert moderator.code() == grpc.StatusCode.PERMISSION_DENIED
    await _set_rules(hall, ["Be kind"], by="adm")
    stale = await refused(_set_rules(hall, ["Overwrite"], etag=hall.community.etag))
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION
    empty = await refused(_set_rules(hall, []))
    assert "rules" in field_violations(empty)
    untitled = await refused(_set_rules(hall, [""]))
    assert "rules[0].title" in field_violations(untitled)
    current = await hall.stub.GetRules(
        pb.GetRulesRequest(community_id=hall.id), metadata=hall.auth("mod")
    )
    assert [r.title for r in current.rules.rules] == ["Be kind"]
    assert current.rules.author_user_id == "adm"
    members_only = await refused(_pending(hall, by="nobody"))
    assert members_only.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ("update_rules", "adm", "") in await hall.audit()


async def test_applicants_accept_the_rules_when_asking_and_keep_it_on_approval(
    members: RunningService,
) -> None:
    hall = await Hall.create(members, join_policy=pb.JOIN_POLICY_APPROVAL)
    await _set_rules(hall, ["Be kind"])
    unread = await refused(hall.join("ann"))
    assert unread.code() == grpc.StatusCode.FAILED_PRECONDITION
    asked = await hall.join("ann", accepted_rules_version=1)
    assert asked.join_request.state == pb.JOIN_REQUEST_STATE_PENDING
    approved = await hall.stub.ReviewJoinRequest(
        pb.ReviewJoinRequestRequest(community_id=hall.id, user_id="ann", approve=True),
        metadata=hall.auth("olga"),
    )
    assert approved.membership.rules_accepted
    no_rules = await Hall.create(members)
    await no_rules.join("ann")
    nothing = await refused(_accept(no_rules, "ann", 1))
    assert nothing.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_members_listing_pages_through_everyone(members: RunningService) -> None:
    hall = await Hall.create(members)
    for n in range(5):
        await hall.join(f"m{n}")
    seen: list[str] = []
    token = ""
    while True:
        page = await hall.stub.ListMembers(
            pb.ListMembersRequest(community_id=hall.id, page_size=2, page_token=token),
            metadata=hall.auth("olga"),
        )
        seen.extend(member.user_id for member in page.members)
        token = page.next_page_token
        if not token:
            break
    assert seen == ["olga", "m0", "m1", "m2", "m3", "m4"]
    other = await refused(
        hall.stub.ListMembers(
            pb.ListMembersRequest(
                community_id=hall.id, rules_pending=True, page_token=token or "x"
            ),
            metadata=hall.auth("olga"),
        )
    )
    assert "page_token" in field_violations(other)
