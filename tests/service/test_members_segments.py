"""Segments through gRPC: moderators describe groups of members with rules over profiles,
activity and streaks, and count and list who is in them, one community at a time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import and_, delete

from services.members.store.tables import member_activity
from studyhall.members.v1 import checkins_service_pb2 as cpb
from studyhall.members.v1 import checkins_service_pb2_grpc as cpb_grpc
from studyhall.members.v1 import members_service_pb2 as mpb
from studyhall.members.v1 import members_service_pb2_grpc as mpb_grpc
from studyhall.members.v1 import profiles_service_pb2 as pb
from studyhall.members.v1 import profiles_service_pb2_grpc as pb_grpc
from tests.support.errors import field_violations
from tests.support.members import joins_marked_as_activity
from tests.support.services import RunningService

pytestmark = pytest.mark.service


class Club:
    """One community owned by "olga" with the moderator "mia", and helpers to act in it."""

    def __init__(self, members: RunningService, community_id: str) -> None:
        self.members = members
        self.id = community_id
        self.community = mpb_grpc.MembersServiceStub(members.channel)
        self.profiles = pb_grpc.ProfilesServiceStub(members.channel)

    @classmethod
    async def create(cls, members: RunningService) -> Club:
        reply = await mpb_grpc.MembersServiceStub(members.channel).CreateCommunity(
            mpb.CreateCommunityRequest(name=f"Club {uuid.uuid4().hex[:8]}", topic="python"),
            metadata=members.auth("olga"),
        )
        club = cls(members, reply.community.id)
        await club.join("mia")
        await club.community.ChangeRole(
            mpb.ChangeRoleRequest(community_id=club.id, user_id="mia", role=mpb.ROLE_MODERATOR),
            metadata=members.auth("olga"),
        )
        await club.profiles.DefineAttribute(
            pb.DefineAttributeRequest(
                community_id=club.id,
                attribute=pb.AttributeDefinition(
                    key="hours", label="Hours a week", type=pb.ATTRIBUTE_TYPE_NUMBER
                ),
            ),
            metadata=members.auth("olga"),
        )
        return club

    async def join(self, *users: str) -> None:
        for user in users:
            await self.community.JoinCommunity(
                mpb.JoinCommunityRequest(community_id=self.id), metadata=self.members.auth(user)
            )

    async def profile(self, user: str, **fields: object) -> None:
        attributes = {}
        if "hours" in fields:
            attributes["hours"] = pb.AttributeValue(number_value=float(fields.pop("hours")))  # type: ignore[arg-type]
        await self.profiles.UpdateProfile(
            pb.UpdateProfileRequest(
                profile=pb.Profile(community_id=self.id, attributes=attributes, **fields),  # type: ignore[arg-type]
                update_mask=FieldMask(paths=[*fields, "attributes"]),
            ),
            metadata=self.members.auth(user),
        )

    async def set_activity(self, wanted: dict[str, tuple[int, datetime | None] | None]) -> None:
        """Make member_activity say what `wanted` says (None: no row, as for a member the
        ledger never saw). The ledger marks every join as activity, asynchronously: wait for
        it to catch up first, so it does not overwrite what the test sets."""
        await joins_marked_as_activity(self.members, self.id)
        database = self.members.deps.database
        async with database.write() as session:
            for user, activity in wanted.items():
                mine = and_(
                    member_activity.c.community_id == self.id, member_activity.c.user_id == user
                )
                await session.execute(delete(member_activity).where(mine))
                if activity is not None:
                    points, last_active = activity
                    await session.execute(
                        member_activity.insert().values(
                            community_id=self.id,
                            user_id=user,
                            points_total=points,
                            level=1 + points // 100,
                            last_active_at=last_active,
                        )
                    )

    async def preview(self, rule: object, as_user: str = "mia") -> tuple[int, list[str]]:
        reply = await self.profiles.PreviewSegment(
            pb.PreviewSegmentRequest(community_id=self.id, rule=_text(rule), page_size=100),
            metadata=self.members.auth(as_user),
        )
        return reply.member_count, sorted(reply.user_ids)

    async def create_segment(self, name: str, rule: object, as_user: str = "mia") -> pb.Segment:
        reply = await self.profiles.CreateSegment(
            pb.CreateSegmentRequest(community_id=self.id, name=name, rule=json.dumps(rule)),
            metadata=self.members.auth(as_user),
        )
        segment: pb.Segment = reply.segment
        return segment

    async def count(self, segment_id: str) -> int:
        reply = await self.profiles.CountSegment(
            pb.CountSegmentRequest(community_id=self.id, segment_id=segment_id),
            metadata=self.members.auth("mia"),
        )
        return int(reply.member_count)

    async def segments(self) -> list[str]:
        reply = await self.profiles.ListSegments(
            pb.ListSegmentsRequest(community_id=self.id), metadata=self.members.auth("mia")
        )
        return [s.name for s in reply.segments]


def _text(rule: object) -> str:
    return rule if isinstance(rule, str) else json.dumps(rule)


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def _populated(members: RunningService) -> Club:
    """ana: beginner, python, 10 h, 50 points, active now; ben: beginner, 2 h, never active;
    cy: advanced, python+go, 20 h, 500 points, active 40 days ago; dan: no profile."""
    club = await Club.create(members)
    await club.join("ana", "ben", "cy", "dan")
    now = datetime.now(UTC)
    await club.profile("ana", level=pb.PROFILE_LEVEL_BEGINNER, interests=["python"], hours=10)
    await club.profile("ben", level=pb.PROFILE_LEVEL_BEGINNER, hours=2)
    await club.profile("cy", level=pb.PROFILE_LEVEL_ADVANCED, interests=["python", "go"], hours=20)
    await club.set_activity(
        {
            "ana": (50, now),
            "ben": (0, None),
            "cy": (500, now - timedelta(days=40)),
            "dan": None,
            "mia": None,
            "olga": None,
        }
    )
    return club


async def test_rules_select_members_by_profile_activity_and_standing(
    members: RunningService,
) -> None:
    club = await _populated(members)
    everyone = ["ana", "ben", "cy", "dan", "mia", "olga"]
    cases: list[tuple[object, list[str]]] = [
        ({"attribute": "level", "op": "eq", "value": "beginner"}, ["ana", "ben"]),
        ({"attribute": "level", "op": "gte", "value": "intermediate"}, ["cy"]),
        ({"attribute": "level", "op": "exists", "value": False}, ["dan", "mia", "olga"]),
        ({"attribute": "interests", "op": "contains", "value": "python"}, ["ana", "cy"]),
        ({"attribute": "hours", "op": "gt", "value": 5}, ["ana", "cy"]),
        ({"attribute": "hours", "op": "in", "value": [2, 20]}, ["ben", "cy"]),
        ({"attribute": "hours", "op": "ne", "value": 2}, ["ana", "cy"]),
        (
            {"not": {"attribute": "hours", "op": "eq", "value": 2}},
            ["ana", "cy", "dan", "mia", "olga"],
        ),
        ({"points_at_least": 20}, ["ana", "cy"]),
        ({"points_at_least": 0}, everyone),
        ({"level_at_least": 2}, ["cy"]),
        ({"inactive_for_days": 30}, ["ben", "cy", "dan", "mia", "olga"]),
        ({"last_active_before": "2000-01-01"}, ["ben", "dan", "mia", "olga"]),
        ({"role_at_least": "moderator"}, ["mia", "olga"]),
        ({"joined_within_days": 30}, everyone),
        ({"joined_before": "2000-01-01"}, []),
        (
            {
                "all": [
                    {"attribute": "level", "op": "eq", "value": "beginner"},
                    {"joined_within_days": 30},
                    {
                        "any": [
                            {"points_at_least": 20},
                            {"not": {"last_active_before": "2000-01-01"}},
                        ]
                    },
                ]
            },
            ["ana"],
        ),
    ]
    for rule, expected in cases:
        assert await club.preview(rule) == (len(expected), expected), rule


async def test_invalid_rules_are_refused_with_the_path_of_every_problem(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    rule = {
        "all": [
            {"attribute": "hours", "op": "gte", "value": "many"},
            {"any": [{"attribute": "level", "op": "gtt", "value": "beginner"}]},
            {"streak_at_least": -2},
        ]
    }
    for call in (
        club.preview(rule),
        club.create_segment("bad", rule),
    ):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        found = field_violations(error)
        assert set(found) == {
            "rule.all[0].value",
            "rule.all[1].any[0].op",
            "rule.all[2].streak_at_least",
        }
        assert found["rule.all[1].any[0].op"].startswith('unknown operator "gtt"; use one of')
    not_json = await refused(club.preview("{"))
    assert "not valid JSON" in field_violations(not_json)["rule"]
    assert await club.segments() == []


async def test_segments_are_for_moderators_and_above(members: RunningService) -> None:
    club = await Club.create(members)
    await club.join("ana")
    rule = {"points_at_least": 1}
    for call in (
        club.create_segment("mine", rule, as_user="ana"),
        club.preview(rule, as_user="ana"),
        club.preview(rule, as_user="zed"),
    ):
        assert (await refused(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    segment = await club.create_segment("active", rule)
    for call in (
        club.profiles.CountSegment(
            pb.CountSegmentRequest(community_id=club.id, segment_id=segment.id),
            metadata=members.auth("ana"),
        ),
        club.profiles.DeleteSegment(
            pb.DeleteSegmentRequest(community_id=club.id, segment_id=segment.id),
            metadata=members.auth("ana"),
        ),
        club.profiles.ListSegmentMembers(
            pb.ListSegmentMembersRequest(community_id=club.id, segment_id=segment.id),
            metadata=members.auth("ana"),
        ),
    ):
        assert (await refused(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert await club.segments() == ["active"]


async def test_a_segment_is_saved_changed_counted_listed_and_deleted(
    members: RunningService,
) -> None:
    club = await _populated(members)
    segment = await club.create_segment(
        "beginners", {"attribute": "level", "op": "eq", "value": "beginner"}
    )
    assert (segment.created_by_user_id, segment.version) == ("mia", 1)
    assert await club.count(segment.id) == 2
    taken = await refused(club.create_segment("beginners", {"points_at_least": 1}))
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS

    updated = await club.profiles.UpdateSegment(
        pb.UpdateSegmentRequest(
            segment=pb.Segment(
                id=segment.id,
                community_id=club.id,
                name="python people",
                rule=json.dumps({"attribute": "interests", "op": "contains", "value": "python"}),
                version=1,
            ),
            update_mask=FieldMask(paths=["name", "rule"]),
        ),
        metadata=members.auth("mia"),
    )
    assert (updated.segment.name, updated.segment.version) == ("python people", 2)
    stale = await refused(
        club.profiles.UpdateSegment(
            pb.UpdateSegmentRequest(
                segment=pb.Segment(id=segment.id, community_id=club.id, name="x", version=1),
                update_mask=FieldMask(paths=["name"]),
            ),
            metadata=members.auth("mia"),
        )
    )
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION
    got = await club.profiles.GetSegment(
        pb.GetSegmentRequest(community_id=club.id, segment_id=segment.id),
        metadata=members.auth("mia"),
    )
    assert got.segment.name == "python people"
    assert await club.count(segment.id) == 2

    await club.profiles.DeleteSegment(
        pb.DeleteSegmentRequest(community_id=club.id, segment_id=segment.id),
        metadata=members.auth("mia"),
    )
    assert await club.segments() == []
    gone = await refused(club.count(segment.id))
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_segment_members_page_in_a_stable_order_and_only_active_members_count(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    users = [f"user{i:02d}" for i in range(7)]
    await club.join(*users)
    segment = await club.create_segment("plain members", {"not": {"role_at_least": "moderator"}})
    assert await club.count(segment.id) == 7

    await club.community.LeaveCommunity(
        mpb.LeaveCommunityRequest(community_id=club.id), metadata=members.auth("user03")
    )
    assert await club.count(segment.id) == 6
    seen: list[str] = []
    tokens: list[str] = []
    token = ""
    while True:
        page = await club.profiles.ListSegmentMembers(
            pb.ListSegmentMembersRequest(
                community_id=club.id, segment_id=segment.id, page_size=4, page_token=token
            ),
            metadata=members.auth("mia"),
        )
        seen.extend(page.user_ids)
        token = page.next_page_token
        if not token:
            break
        tokens.append(token)
    assert seen == [u for u in users if u != "user03"]  # joined in this order
    assert len(tokens) == 1

    other = await club.create_segment("other", {"points_at_least": 0})
    wrong = await refused(
        club.profiles.ListSegmentMembers(
            pb.ListSegmentMembersRequest(
                community_id=club.id, segment_id=other.id, page_size=4, page_token=tokens[0]
            ),
            metadata=members.auth("mia"),
        )
    )
    assert "page_token" in field_violations(wrong)


async def test_two_communities_with_the_same_members_never_mix(members: RunningService) -> None:
    first = await _populated(members)
    second = await Club.create(members)
    await second.join("ana", "ben")
    await second.profile("ben", level=pb.PROFILE_LEVEL_BEGINNER, interests=["python"], hours=30)
    await second.set_activity({"ana": None, "ben": None, "mia": None, "olga": None})
    rule = {"attribute": "interests", "op": "contains", "value": "python"}
    assert await first.preview(rule) == (2, ["ana", "cy"])
    assert await second.preview(rule) == (1, ["ben"])
    assert await second.preview({"points_at_least": 1}) == (0, [])
    in_second = await second.create_segment("pythonistas", rule)
    assert await second.count(in_second.id) == 1
    assert await first.segments() == []
    # The segment's id does not reach into the community it does not belong to.
    elsewhere = await refused(first.count(in_second.id))
    assert elsewhere.code() == grpc.StatusCode.NOT_FOUND


async def test_streak_and_retired_attributes_in_rules(members: RunningService) -> None:
    club = await _populated(members)
    checkins = cpb_grpc.CheckinsServiceStub(members.channel)
    await checkins.CheckIn(cpb.CheckInRequest(community_id=club.id), metadata=members.auth("ben"))
    assert await club.preview({"streak_at_least": 1}) == (1, ["ben"])
    assert await club.preview({"streak_at_least": 2}) == (0, [])

    hours = await club.create_segment("busy", {"attribute": "hours", "op": "gte", "value": 10})
    await club.profiles.RetireAttribute(
        pb.RetireAttributeRequest(community_id=club.id, key="hours"), metadata=members.auth("olga")
    )
    outdated = await refused(club.count(hours.id))
    assert outdated.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "update its rule" in (outdated.details() or "")
