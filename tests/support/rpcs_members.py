"""The request catalogue of the members process: MembersService, ProfilesService,
CheckinsService, RecognitionService and CareService (see tests/support/catalogue.py)."""

from __future__ import annotations

import json
import uuid

from google.protobuf.field_mask_pb2 import FieldMask

from services.kit.access import Role
from services.members.app import SPEC
from services.members.settings import MembersSettings
from services.members.store.tables import metadata
from studyhall.members.v1 import care_service_pb2 as care
from studyhall.members.v1 import checkins_service_pb2 as checkins
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import profiles_service_pb2 as profiles
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from studyhall.members.v1 import recognition_service_pb2 as recognition
from tests.support.catalogue import Caller, Process, Rpc, World, new_id
from tests.support.services import RunningService

MEMBERS = pb.DESCRIPTOR.services_by_name["MembersService"]
PROFILES = profiles.DESCRIPTOR.services_by_name["ProfilesService"]
CHECKINS = checkins.DESCRIPTOR.services_by_name["CheckinsService"]
RECOGNITION = recognition.DESCRIPTOR.services_by_name["RecognitionService"]
CARE = care.DESCRIPTOR.services_by_name["CareService"]

OWNER = "olga"
MEMBER = "ann"
LEAVER = "lea"
APPELLANT = "abe"
ERASABLE = "eve"
HEIR = "hal"
APPLICANTS = ("applicant-1", "applicant-2")

# Rules with a leaf of most kinds, so that changing one value of a valid rule reaches each
# kind's checks (tests/service/test_fuzz_rpcs.py does).
SEGMENT_RULE = json.dumps(
    {
        "all": [
            {"points_at_least": 0},
            {"attribute": "interests", "op": "contains", "value": "python"},
            {"not": {"attribute": "hours", "op": "gt", "value": 40}},
        ]
    }
)
UPDATED_RULE = json.dumps(
    {
        "any": [
            {"level_at_least": 1},
            {"last_active_before": "2100-01-01"},
            {"attribute": "time_zone", "op": "eq", "value": "Europe/Paris"},
        ]
    }
)
PREVIEW_RULE = json.dumps(
    {
        "any": [
            {"role_at_least": "member"},
            {"joined_within_days": 30},
            {"attribute": "hours", "op": "in", "value": [2, 4.5]},
            {"attribute": "level", "op": "gte", "value": "beginner"},
            {"joined_before": "2100-01-01"},
            {"inactive_for_days": 7},
            {"streak_at_least": 1},
        ]
    }
)


def _hex() -> str:
    return uuid.uuid4().hex[:10]


CATALOGUE: list[Rpc] = [
    # MembersService
    Rpc(
        MEMBERS,
        "CreateCommunity",
        lambda w: pb.CreateCommunityRequest(
            request_id=new_id(), name=f"Hall {_hex()}", topic="exams", tags=["ielts"]
        ),
        None,
        True,
    ),
    Rpc(
        MEMBERS,
        "GetCommunity",
        lambda w: pb.GetCommunityRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(
        MEMBERS,
        "JoinCommunity",
        lambda w: pb.JoinCommunityRequest(
            request_id=new_id(),
            community_id=w.community_id,
            invite_code=w.invite_code,
            accepted_rules_version=1,
        ),
        None,
        True,
        Caller.NEWCOMER,
    ),
    Rpc(
        MEMBERS,
        "LeaveCommunity",
        lambda w: pb.LeaveCommunityRequest(request_id=new_id(), community_id=w.community_id),
        Role.MEMBER,
        True,
        Caller.LEAVER,
    ),
    Rpc(
        MEMBERS,
        "UpdateCommunity",
        lambda w: pb.UpdateCommunityRequest(
            request_id=new_id(),
            community=pb.Community(id=w.community_id, topic="exams and essays"),
            update_mask=FieldMask(paths=["topic"]),
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        MEMBERS,
        "ArchiveCommunity",
        lambda w: pb.ArchiveCommunityRequest(
            request_id=new_id(), community_id=w.archive_community_id
        ),
        Role.OWNER,
        True,
    ),
    Rpc(
        MEMBERS,
        "ListCommunities",
        lambda w: pb.ListCommunitiesRequest(topic="exams", page_size=10),
        None,
        False,
    ),
    Rpc(
        MEMBERS,
        "ListJoinRequests",
        lambda w: pb.ListJoinRequestsRequest(community_id=w.community_id, page_size=10),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        MEMBERS,
        "ReviewJoinRequest",
        lambda w: pb.ReviewJoinRequestRequest(
            request_id=new_id(), community_id=w.community_id, user_id=w.applicant, approve=True
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        MEMBERS,
        "ChangeRole",
        lambda w: pb.ChangeRoleRequest(
            request_id=new_id(),
            community_id=w.community_id,
            user_id=w.member,
            role=pb.ROLE_MODERATOR,
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        MEMBERS,
        "TransferOwnership",
        lambda w: pb.TransferOwnershipRequest(
            request_id=new_id(), community_id=w.handover_community_id, new_owner_user_id=w.heir
        ),
        Role.OWNER,
        True,
    ),
    Rpc(
        MEMBERS,
        "ModerateMember",
        lambda w: pb.ModerateMemberRequest(
            request_id=new_id(),
            community_id=w.community_id,
            user_id=w.erasable,
            action=pb.MODERATION_ACTION_MUTE,
            reason="links in every message",
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        MEMBERS,
        "ListAuditLog",
        lambda w: pb.ListAuditLogRequest(community_id=w.community_id, page_size=10),
        Role.ADMIN,
        False,
    ),
    Rpc(
        MEMBERS,
        "CreateInvite",
        lambda w: pb.CreateInviteRequest(
            request_id=new_id(), community_id=w.community_id, max_uses=10
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        MEMBERS,
        "ListInvites",
        lambda w: pb.ListInvitesRequest(community_id=w.community_id, page_size=10),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        MEMBERS,
        "RevokeInvite",
        lambda w: pb.RevokeInviteRequest(
            request_id=new_id(), community_id=w.community_id, invite_id=w.invite_id
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        MEMBERS,
        # On the handover community: a new version of the main community's rules would
        # outdate the version JoinCommunity and AcceptRules name.
        "UpdateRules",
        lambda w: pb.UpdateRulesRequest(
            request_id=new_id(),
            community_id=w.handover_community_id,
            rules=[pb.Rule(title="Be kind", body="Critique ideas, not people.")],
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        MEMBERS,
        "GetRules",
        lambda w: pb.GetRulesRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(
        MEMBERS,
        "AcceptRules",
        lambda w: pb.AcceptRulesRequest(
            request_id=new_id(), community_id=w.community_id, version=1
        ),
        Role.MEMBER,
        True,
    ),
    Rpc(
        MEMBERS,
        "ListMembers",
        lambda w: pb.ListMembersRequest(community_id=w.community_id, page_size=10),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        MEMBERS,
        "FileReport",
        lambda w: pb.FileReportRequest(
            request_id=new_id(),
            community_id=w.community_id,
            target_user_id=w.member,
            reason=pb.REPORT_REASON_OFF_TOPIC,
            details="keeps posting about football",
        ),
        Role.MEMBER,
        True,
    ),
    Rpc(
        MEMBERS,
        "ListReports",
        lambda w: pb.ListReportsRequest(community_id=w.community_id, page_size=10),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        MEMBERS,
        "ResolveReport",
        lambda w: pb.ResolveReportRequest(
            request_id=new_id(),
            community_id=w.community_id,
            report_id=w.open_report_id,
            resolution=pb.RESOLUTION_DISMISS,
            note="not against the rules",
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        MEMBERS,
        "AppealReport",
        lambda w: pb.AppealReportRequest(
            request_id=new_id(),
            community_id=w.community_id,
            report_id=w.decided_report_id,
            statement="the link was to the course notes",
        ),
        Role.MEMBER,
        True,
        Caller.APPELLANT,
    ),
    Rpc(
        MEMBERS,
        "ExportMyData",
        lambda w: pb.ExportMyDataRequest(community_id=w.community_id),
        Role.MEMBER,
        False,
    ),
    Rpc(
        MEMBERS,
        "EraseMyData",
        lambda w: pb.EraseMyDataRequest(
            request_id=new_id(), community_id=w.community_id, confirm=True, user_id=w.erasable
        ),
        Role.MEMBER,
        True,
        Caller.OPERATOR,
    ),
    # ProfilesService
    Rpc(
        PROFILES,
        "DefineAttribute",
        lambda w: profiles.DefineAttributeRequest(
            request_id=new_id(),
            community_id=w.community_id,
            attribute=profiles.AttributeDefinition(
                key=f"exam_{_hex()}",
                label="Target exam",
                type=profiles.ATTRIBUTE_TYPE_CHOICE,
                options=["ielts", "toefl"],
            ),
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        PROFILES,
        "UpdateAttribute",
        lambda w: profiles.UpdateAttributeRequest(
            request_id=new_id(),
            community_id=w.community_id,
            attribute=profiles.AttributeDefinition(key=w.attribute_key, label="Hours a week"),
            update_mask=FieldMask(paths=["label"]),
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        PROFILES,
        "ListAttributes",
        lambda w: profiles.ListAttributesRequest(community_id=w.community_id),
        Role.MEMBER,
        False,
    ),
    Rpc(
        PROFILES,
        "RetireAttribute",
        lambda w: profiles.RetireAttributeRequest(
            request_id=new_id(), community_id=w.community_id, key=w.retiring_attribute_key
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        PROFILES,
        "GetProfile",
        lambda w: profiles.GetProfileRequest(community_id=w.community_id),
        Role.MEMBER,
        False,
    ),
    Rpc(
        PROFILES,
        "UpdateProfile",
        lambda w: profiles.UpdateProfileRequest(
            request_id=new_id(),
            profile=profiles.Profile(
                community_id=w.community_id,
                interests=["python", "statistics"],
                level=profiles.PROFILE_LEVEL_INTERMEDIATE,
                birthday=profiles.Birthday(month=2, day=29),
                attributes={w.attribute_key: profiles.AttributeValue(number_value=6.5)},
            ),
            update_mask=FieldMask(paths=["interests", "level", "birthday", "attributes"]),
        ),
        Role.MEMBER,
        True,
    ),
    Rpc(
        PROFILES,
        "CreateSegment",
        lambda w: profiles.CreateSegmentRequest(
            request_id=new_id(),
            community_id=w.community_id,
            name=f"segment {_hex()}",
            description="members with interests",
            rule=SEGMENT_RULE,
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        PROFILES,
        "UpdateSegment",
        lambda w: profiles.UpdateSegmentRequest(
            request_id=new_id(),
            segment=profiles.Segment(
                id=w.segment_id,
                community_id=w.community_id,
                description="levels, activity or nickname",
                rule=UPDATED_RULE,
            ),
            update_mask=FieldMask(paths=["description", "rule"]),
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        PROFILES,
        "DeleteSegment",
        lambda w: profiles.DeleteSegmentRequest(
            request_id=new_id(), community_id=w.community_id, segment_id=w.doomed_segment_id
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        PROFILES,
        "GetSegment",
        lambda w: profiles.GetSegmentRequest(community_id=w.community_id, segment_id=w.segment_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        PROFILES,
        "ListSegments",
        lambda w: profiles.ListSegmentsRequest(community_id=w.community_id, page_size=10),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        PROFILES,
        "PreviewSegment",
        lambda w: profiles.PreviewSegmentRequest(
            community_id=w.community_id, rule=PREVIEW_RULE, page_size=10
        ),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        PROFILES,
        "CountSegment",
        lambda w: profiles.CountSegmentRequest(
            community_id=w.community_id, segment_id=w.segment_id
        ),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        PROFILES,
        "ListSegmentMembers",
        lambda w: profiles.ListSegmentMembersRequest(
            community_id=w.community_id, segment_id=w.segment_id, page_size=10
        ),
        Role.MODERATOR,
        False,
    ),
    # CheckinsService
    Rpc(
        CHECKINS,
        "CheckIn",
        lambda w: checkins.CheckInRequest(
            request_id=new_id(), community_id=w.community_id, note="two chapters of statistics"
        ),
        Role.MEMBER,
        True,
    ),
    Rpc(
        CHECKINS,
        "GetStreak",
        lambda w: checkins.GetStreakRequest(community_id=w.community_id),
        Role.MEMBER,
        False,
    ),
    Rpc(
        CHECKINS,
        "ListCheckins",
        lambda w: checkins.ListCheckinsRequest(community_id=w.community_id, page_size=10),
        Role.MEMBER,
        False,
    ),
    Rpc(
        CHECKINS,
        "SetCheckinSettings",
        lambda w: checkins.SetCheckinSettingsRequest(
            request_id=new_id(), community_id=w.community_id, grace_days=2
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        CHECKINS,
        "GetCheckinSettings",
        lambda w: checkins.GetCheckinSettingsRequest(community_id=w.community_id),
        None,
        False,
    ),
    # RecognitionService
    Rpc(
        RECOGNITION,
        "AwardPoints",
        lambda w: recognition.AwardPointsRequest(
            request_id=new_id(),
            community_id=w.community_id,
            user_id=w.member,
            amount=5,
            reason="answered three questions",
        ),
        Role.MEMBER,
        True,
    ),
    Rpc(
        RECOGNITION,
        "ListLedger",
        lambda w: recognition.ListLedgerRequest(
            community_id=w.community_id, user_id=w.member, page_size=10
        ),
        Role.MEMBER,
        False,
    ),
    Rpc(
        RECOGNITION,
        "GetStanding",
        lambda w: recognition.GetStandingRequest(community_id=w.community_id, user_id=w.member),
        None,
        False,
    ),
    Rpc(
        RECOGNITION,
        "SetLevels",
        lambda w: recognition.SetLevelsRequest(
            request_id=new_id(),
            community_id=w.community_id,
            levels=[
                recognition.Level(min_points=0),
                recognition.Level(min_points=10, privileges=["give_kudos"]),
                recognition.Level(min_points=100, privileges=["create_invites"]),
            ],
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        RECOGNITION,
        "GetLevels",
        lambda w: recognition.GetLevelsRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(
        RECOGNITION,
        "ListBadges",
        lambda w: recognition.ListBadgesRequest(community_id=w.community_id, user_id=w.member),
        None,
        False,
    ),
    Rpc(
        RECOGNITION,
        "GetLeaderboard",
        lambda w: recognition.GetLeaderboardRequest(
            community_id=w.community_id,
            window=recognition.LEADERBOARD_WINDOW_ALL_TIME,
            page_size=10,
        ),
        None,
        False,
    ),
    # CareService
    Rpc(
        CARE,
        "GetCareSettings",
        lambda w: care.GetCareSettingsRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        CARE,
        "SetCareSettings",
        lambda w: care.SetCareSettingsRequest(
            request_id=new_id(),
            settings=care.CareSettings(
                community_id=w.community_id,
                inactive_after_days=21,
                streak_reminder_hour=19,
                birthdays=True,
                holidays=[care.Holiday(date="12-25", name="Winter break")],
            ),
            expected_version=0,
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        CARE,
        "ListCareSignals",
        lambda w: care.ListCareSignalsRequest(community_id=w.community_id, page_size=10),
        Role.MODERATOR,
        False,
    ),
]


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A public community (joined by approval or with an invite) with rules, members in each
    part the catalogue gives them, reports, attributes and segments; and two more communities
    of the owner, one to hand over and one to archive."""
    community = pb_grpc.MembersServiceStub(running.channel)
    people = profiles_grpc.ProfilesServiceStub(running.channel)
    owner = running.auth(OWNER)

    created = await community.CreateCommunity(
        pb.CreateCommunityRequest(
            name=f"Hall {_hex()}",
            topic="exams",
            join_policy=pb.JOIN_POLICY_APPROVAL,
            join_questions=["What are you studying for?"],
        ),
        metadata=owner,
    )
    hall = created.community.id
    await community.UpdateRules(
        pb.UpdateRulesRequest(community_id=hall, rules=[pb.Rule(title="Be kind")]),
        metadata=owner,
    )
    invite = await community.CreateInvite(pb.CreateInviteRequest(community_id=hall), metadata=owner)
    spare_invite = await community.CreateInvite(
        pb.CreateInviteRequest(community_id=hall), metadata=owner
    )
    for user in (MEMBER, LEAVER, APPELLANT, ERASABLE):
        await community.JoinCommunity(
            pb.JoinCommunityRequest(
                community_id=hall, invite_code=invite.code, accepted_rules_version=1
            ),
            metadata=running.auth(user),
        )
    for user in APPLICANTS:
        await community.JoinCommunity(
            pb.JoinCommunityRequest(community_id=hall, answers=["IELTS"], accepted_rules_version=1),
            metadata=running.auth(user),
        )

    open_report = await community.FileReport(
        pb.FileReportRequest(
            community_id=hall, target_user_id=ERASABLE, reason=pb.REPORT_REASON_SPAM
        ),
        metadata=running.auth(MEMBER),
    )
    about_appellant = await community.FileReport(
        pb.FileReportRequest(
            community_id=hall, target_user_id=APPELLANT, reason=pb.REPORT_REASON_SPAM
        ),
        metadata=running.auth(MEMBER),
    )
    await community.ResolveReport(
        pb.ResolveReportRequest(
            community_id=hall,
            report_id=about_appellant.report.report_id,
            resolution=pb.RESOLUTION_WARN,
            note="links",
        ),
        metadata=owner,
    )

    for key, kind in (
        ("hours", profiles.ATTRIBUTE_TYPE_NUMBER),
        ("nickname", profiles.ATTRIBUTE_TYPE_STRING),
    ):
        await people.DefineAttribute(
            profiles.DefineAttributeRequest(
                community_id=hall,
                attribute=profiles.AttributeDefinition(key=key, label=key.title(), type=kind),
            ),
            metadata=owner,
        )
    segments = []
    for name in ("everyone", "doomed"):
        made = await people.CreateSegment(
            profiles.CreateSegmentRequest(
                community_id=hall, name=name, rule=json.dumps({"points_at_least": 0})
            ),
            metadata=owner,
        )
        segments.append(made.segment.id)

    handover = await community.CreateCommunity(
        pb.CreateCommunityRequest(name=f"Handover {_hex()}", topic="exams"), metadata=owner
    )
    await community.JoinCommunity(
        pb.JoinCommunityRequest(community_id=handover.community.id),
        metadata=running.auth(HEIR),
    )
    archive = await community.CreateCommunity(
        pb.CreateCommunityRequest(name=f"Archive {_hex()}", topic="exams"), metadata=owner
    )
    return World(
        community_id=hall,
        owner=OWNER,
        member=MEMBER,
        leaver=LEAVER,
        appellant=APPELLANT,
        erasable=ERASABLE,
        applicant=APPLICANTS[0],
        heir=HEIR,
        handover_community_id=handover.community.id,
        archive_community_id=archive.community.id,
        invite_code=invite.code,
        invite_id=spare_invite.invite.invite_id,
        open_report_id=open_report.report.report_id,
        decided_report_id=about_appellant.report.report_id,
        attribute_key="hours",
        retiring_attribute_key="nickname",
        segment_id=segments[0],
        doomed_segment_id=segments[1],
    )


PROCESS = Process(
    name="members",
    spec=SPEC,
    settings=MembersSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
    # No care sweep either: it writes signals on its own schedule.
    overrides={"care_sweep_seconds": 0},
)
