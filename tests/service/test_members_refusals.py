"""The permission table of the members service, checked call by call.

Every RPC of MembersService is called, with otherwise valid arguments aimed at a private
community A, as four personas: a moderator of another community B, a banned member of A, a
muted member of A, and someone with no token. Each call is either refused with the status
the table names, and changes nothing in A, or is listed as allowed with the reason and must
succeed. An RPC added to the service without a row here fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support.services import RunningService

pytestmark = pytest.mark.service

OUTSIDER = "moderator-of-b"
BANNED = "banned-in-a"
MUTED = "muted-in-a"
ANONYMOUS = "no-token"
PERSONAS = (OUTSIDER, BANNED, MUTED, ANONYMOUS)

NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
EXISTS = grpc.StatusCode.ALREADY_EXISTS


@dataclass(frozen=True)
class Allowed:
    """The persona may make this call; `why` is the rule that lets them."""

    why: str


Outcome: TypeAlias = grpc.StatusCode | Allowed


@dataclass
class World:
    """Community A as the cases need it."""

    community_id: str
    invite_code: str
    invite_id: str
    open_report_id: str
    decided_report_id: str


def _staff_only(why_not: grpc.StatusCode = DENIED) -> dict[str, Outcome]:
    # A is private: outsiders and the banned do not learn it exists; a member lacks the role.
    return {OUTSIDER: NOT_FOUND, BANNED: NOT_FOUND, MUTED: why_not}


def _everyone(why: str) -> dict[str, Outcome]:
    return {OUTSIDER: Allowed(why), BANNED: Allowed(why), MUTED: Allowed(why)}


# The permission table: RPC -> persona -> outcome. No token is UNAUTHENTICATED everywhere.
TABLE: dict[str, dict[str, Outcome]] = {
    "CreateCommunity": _everyone("anyone signed in creates a community of their own"),
    "GetCommunity": {
        OUTSIDER: NOT_FOUND,
        BANNED: NOT_FOUND,
        MUTED: Allowed("a muted member still reads the community"),
    },
    "JoinCommunity": {
        OUTSIDER: Allowed("a valid invite admits anyone not banned, private community or not"),
        BANNED: DENIED,
        MUTED: EXISTS,
    },
    "LeaveCommunity": {
        OUTSIDER: NOT_FOUND,
        BANNED: NOT_FOUND,
        MUTED: Allowed("a member may always leave"),
    },
    "UpdateCommunity": _staff_only(),
    "ArchiveCommunity": _staff_only(),
    "ListCommunities": _everyone("lists only what the caller may see"),
    "ListJoinRequests": _staff_only(),
    "ReviewJoinRequest": _staff_only(),
    "ChangeRole": _staff_only(),
    "TransferOwnership": _staff_only(),
    "ModerateMember": _staff_only(),
    "ListAuditLog": _staff_only(),
    "CreateInvite": _staff_only(),
    "ListInvites": _staff_only(),
    "RevokeInvite": _staff_only(),
    "UpdateRules": _staff_only(),
    "GetRules": {
        OUTSIDER: NOT_FOUND,
        BANNED: NOT_FOUND,
        MUTED: Allowed("members read the rules"),
    },
    "AcceptRules": {
        OUTSIDER: NOT_FOUND,
        BANNED: NOT_FOUND,
        MUTED: Allowed("accepting the rules is not speaking"),
    },
    "ListMembers": _staff_only(),
    "FileReport": {
        OUTSIDER: NOT_FOUND,
        BANNED: NOT_FOUND,
        MUTED: Allowed("reporting abuse stays possible while muted"),
    },
    "ListReports": _staff_only(),
    "ResolveReport": _staff_only(),
    # Only the member a decision acted on may appeal it; to anyone else it does not exist.
    "AppealReport": _staff_only(NOT_FOUND),
    "ExportMyData": {
        OUTSIDER: NOT_FOUND,
        BANNED: Allowed("data rights do not depend on standing: A holds their record"),
        MUTED: Allowed("a member exports their own data"),
    },
    "EraseMyData": {
        OUTSIDER: NOT_FOUND,
        BANNED: Allowed("erasure keeps the ban in force, so it is no way round it"),
        MUTED: Allowed("a member erases their own data; the mute stays"),
    },
}

# Allowed calls that end the persona's place in A run after the others.
LAST = ("LeaveCommunity", "EraseMyData")


def _requests(world: World) -> dict[str, Callable[[], Message]]:
    a = world.community_id
    return {
        "CreateCommunity": lambda: pb.CreateCommunityRequest(
            name=f"Own {uuid.uuid4().hex[:6]}", topic="reading"
        ),
        "GetCommunity": lambda: pb.GetCommunityRequest(community_id=a),
        "JoinCommunity": lambda: pb.JoinCommunityRequest(
            community_id=a, invite_code=world.invite_code, accepted_rules_version=1
        ),
        "LeaveCommunity": lambda: pb.LeaveCommunityRequest(community_id=a),
        "UpdateCommunity": lambda: pb.UpdateCommunityRequest(
            community=pb.Community(id=a, topic="hijacked"),
            update_mask=FieldMask(paths=["topic"]),
        ),
        "ArchiveCommunity": lambda: pb.ArchiveCommunityRequest(community_id=a),
        "ListCommunities": lambda: pb.ListCommunitiesRequest(),
        "ListJoinRequests": lambda: pb.ListJoinRequestsRequest(community_id=a),
        "ReviewJoinRequest": lambda: pb.ReviewJoinRequestRequest(
            community_id=a, user_id="applicant", approve=True
        ),
        "ChangeRole": lambda: pb.ChangeRoleRequest(
            community_id=a, user_id="ann", role=pb.ROLE_MODERATOR
        ),
        "TransferOwnership": lambda: pb.TransferOwnershipRequest(
            community_id=a, new_owner_user_id="ann"
        ),
        "ModerateMember": lambda: pb.ModerateMemberRequest(
            community_id=a, user_id="ann", action=pb.MODERATION_ACTION_MUTE, reason="spite"
        ),
        "ListAuditLog": lambda: pb.ListAuditLogRequest(community_id=a),
        "CreateInvite": lambda: pb.CreateInviteRequest(community_id=a),
        "ListInvites": lambda: pb.ListInvitesRequest(community_id=a),
        "RevokeInvite": lambda: pb.RevokeInviteRequest(community_id=a, invite_id=world.invite_id),
        "UpdateRules": lambda: pb.UpdateRulesRequest(
            community_id=a, rules=[pb.Rule(title="Anything goes")]
        ),
        "GetRules": lambda: pb.GetRulesRequest(community_id=a),
        "AcceptRules": lambda: pb.AcceptRulesRequest(community_id=a, version=1),
        "ListMembers": lambda: pb.ListMembersRequest(community_id=a),
        "FileReport": lambda: pb.FileReportRequest(
            community_id=a, target_user_id="ann", reason=pb.REPORT_REASON_SPAM
        ),
        "ListReports": lambda: pb.ListReportsRequest(community_id=a),
        "ResolveReport": lambda: pb.ResolveReportRequest(
            community_id=a,
            report_id=world.open_report_id,
            resolution=pb.RESOLUTION_DISMISS,
            note="nothing to see",
        ),
        "AppealReport": lambda: pb.AppealReportRequest(
            community_id=a, report_id=world.decided_report_id, statement="not me"
        ),
        "ExportMyData": lambda: pb.ExportMyDataRequest(community_id=a),
        "EraseMyData": lambda: pb.EraseMyDataRequest(community_id=a, confirm=True),
    }


async def _community_a(members: RunningService) -> World:
    stub = pb_grpc.MembersServiceStub(members.channel)
    owner = members.auth("olga")
    created = await stub.CreateCommunity(
        pb.CreateCommunityRequest(
            name="Community A", topic="exams", join_policy=pb.JOIN_POLICY_APPROVAL
        ),
        metadata=owner,
    )
    a = created.community.id
    await stub.UpdateRules(
        pb.UpdateRulesRequest(community_id=a, rules=[pb.Rule(title="Be kind")]), metadata=owner
    )
    invite = await stub.CreateInvite(pb.CreateInviteRequest(community_id=a), metadata=owner)
    for user in ("mod", "ann", MUTED, BANNED):
        await stub.JoinCommunity(
            pb.JoinCommunityRequest(
                community_id=a, invite_code=invite.code, accepted_rules_version=1
            ),
            metadata=members.auth(user),
        )
    await stub.JoinCommunity(
        pb.JoinCommunityRequest(community_id=a, accepted_rules_version=1),
        metadata=members.auth("applicant"),
    )
    await stub.ChangeRole(
        pb.ChangeRoleRequest(community_id=a, user_id="mod", role=pb.ROLE_MODERATOR),
        metadata=owner,
    )
    for user, action in ((MUTED, pb.MODERATION_ACTION_MUTE), (BANNED, pb.MODERATION_ACTION_BAN)):
        await stub.ModerateMember(
            pb.ModerateMemberRequest(community_id=a, user_id=user, action=action, reason="r"),
            metadata=owner,
        )
    open_report = await stub.FileReport(
        pb.FileReportRequest(community_id=a, target_user_id=MUTED, reason=pb.REPORT_REASON_SPAM),
        metadata=members.auth("ann"),
    )
    about_ann = await stub.FileReport(
        pb.FileReportRequest(community_id=a, target_user_id="ann", reason=pb.REPORT_REASON_SPAM),
        metadata=members.auth("mod"),
    )
    await stub.ResolveReport(
        pb.ResolveReportRequest(
            community_id=a,
            report_id=about_ann.report.report_id,
            resolution=pb.RESOLUTION_WARN,
            note="links",
        ),
        metadata=owner,
    )
    await stub.UpdateCommunity(
        pb.UpdateCommunityRequest(
            community=pb.Community(id=a, visibility=pb.VISIBILITY_PRIVATE),
            update_mask=FieldMask(paths=["visibility"]),
        ),
        metadata=owner,
    )
    # B, where the outsider moderates.
    b = await stub.CreateCommunity(
        pb.CreateCommunityRequest(name="Community B", topic="exams"),
        metadata=members.auth("owner-of-b"),
    )
    await stub.JoinCommunity(
        pb.JoinCommunityRequest(community_id=b.community.id), metadata=members.auth(OUTSIDER)
    )
    await stub.ChangeRole(
        pb.ChangeRoleRequest(community_id=b.community.id, user_id=OUTSIDER, role=pb.ROLE_MODERATOR),
        metadata=members.auth("owner-of-b"),
    )
    return World(
        community_id=a,
        invite_code=invite.code,
        invite_id=invite.invite.invite_id,
        open_report_id=open_report.report.report_id,
        decided_report_id=about_ann.report.report_id,
    )


async def _snapshot(members: RunningService, a: str) -> list[bytes]:
    """A as its owner reads it through the API."""
    stub = pb_grpc.MembersServiceStub(members.channel)
    owner = members.auth("olga")
    replies: list[Message] = [
        await stub.GetCommunity(pb.GetCommunityRequest(community_id=a), metadata=owner),
        await stub.GetRules(pb.GetRulesRequest(community_id=a), metadata=owner),
        await stub.ListMembers(
            pb.ListMembersRequest(community_id=a, page_size=100), metadata=owner
        ),
        await stub.ListJoinRequests(
            pb.ListJoinRequestsRequest(community_id=a, page_size=100), metadata=owner
        ),
        await stub.ListInvites(
            pb.ListInvitesRequest(community_id=a, page_size=100), metadata=owner
        ),
        await stub.ListReports(
            pb.ListReportsRequest(community_id=a, page_size=100), metadata=owner
        ),
        await stub.ListAuditLog(
            pb.ListAuditLogRequest(community_id=a, page_size=100), metadata=owner
        ),
    ]
    return [reply.SerializeToString(deterministic=True) for reply in replies]


async def _call(members: RunningService, rpc: str, request: Message, persona: str) -> Any:
    stub = pb_grpc.MembersServiceStub(members.channel)
    metadata = None if persona == ANONYMOUS else members.auth(persona)
    return await getattr(stub, rpc)(request, metadata=metadata)


def test_every_rpc_of_the_service_has_a_row_in_the_table() -> None:
    rpcs = {m.name for m in pb.DESCRIPTOR.services_by_name["MembersService"].methods}
    world = World("", "", "", "", "")
    assert set(TABLE) == rpcs, f"without a row: {sorted(rpcs - set(TABLE))}"
    assert set(_requests(world)) == rpcs
    for rpc, row in TABLE.items():
        assert set(row) == {OUTSIDER, BANNED, MUTED}, rpc


async def test_each_persona_is_refused_or_allowed_as_the_table_says(
    members: RunningService,
) -> None:
    world = await _community_a(members)
    requests = _requests(world)
    before = await _snapshot(members, world.community_id)

    wrong: list[str] = []
    for rpc, row in TABLE.items():
        cases: list[tuple[str, Outcome]] = [
            *row.items(),
            (ANONYMOUS, grpc.StatusCode.UNAUTHENTICATED),
        ]
        for persona, outcome in cases:
            if isinstance(outcome, Allowed):
                continue
            try:
                await _call(members, rpc, requests[rpc](), persona)
            except grpc.aio.AioRpcError as error:
                if error.code() != outcome:
                    wrong.append(f"{rpc} as {persona}: {error.code().name} ({error.details()})")
            else:
                wrong.append(f"{rpc} as {persona}: succeeded, expected {outcome.name}")
    assert wrong == []
    assert await _snapshot(members, world.community_id) == before, "a refused call changed A"

    allowed = [
        (rpc, persona, outcome.why)
        for rpc, row in TABLE.items()
        for persona, outcome in row.items()
        if isinstance(outcome, Allowed)
    ]
    allowed.sort(key=lambda case: case[0] in LAST)
    for rpc, persona, why in allowed:
        try:
            await _call(members, rpc, requests[rpc](), persona)
        except grpc.aio.AioRpcError as error:
            wrong.append(f"{rpc} as {persona} ({why}): {error.code().name} {error.details()}")
    assert wrong == []
