"""Personas through gRPC: a community defines its profile attributes, members fill in their
own profiles (checked against that schema), moderators read them, and nothing crosses from
one community to another."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from services.members.personas.store import ProfileRepository
from studyhall.members.v1 import members_service_pb2 as mpb
from studyhall.members.v1 import members_service_pb2_grpc as mpb_grpc
from studyhall.members.v1 import profiles_service_pb2 as pb
from studyhall.members.v1 import profiles_service_pb2_grpc as pb_grpc
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service

CHOICE = pb.ATTRIBUTE_TYPE_CHOICE
NUMBER = pb.ATTRIBUTE_TYPE_NUMBER


class Club:
    """One community, with its owner "olga", and helpers to act in it as someone."""

    def __init__(self, members: RunningService, community_id: str) -> None:
        self.members = members
        self.id = community_id
        self.community = mpb_grpc.MembersServiceStub(members.channel)
        self.profiles = pb_grpc.ProfilesServiceStub(members.channel)

    @classmethod
    async def create(cls, members: RunningService, owner: str = "olga") -> Club:
        reply = await mpb_grpc.MembersServiceStub(members.channel).CreateCommunity(
            mpb.CreateCommunityRequest(name=f"Club {uuid.uuid4().hex[:8]}", topic="english"),
            metadata=members.auth(owner),
        )
        return cls(members, reply.community.id)

    async def join(self, *users: str, role: mpb.Role.ValueType = mpb.ROLE_MEMBER) -> None:
        for user in users:
            await self.community.JoinCommunity(
                mpb.JoinCommunityRequest(community_id=self.id), metadata=self.members.auth(user)
            )
            if role != mpb.ROLE_MEMBER:
                await self.community.ChangeRole(
                    mpb.ChangeRoleRequest(community_id=self.id, user_id=user, role=role),
                    metadata=self.members.auth("olga"),
                )

    async def define(
        self,
        key: str,
        type_: pb.AttributeType.ValueType,
        *,
        as_user: str = "olga",
        **fields: object,
    ) -> pb.AttributeDefinition:
        reply = await self.profiles.DefineAttribute(
            pb.DefineAttributeRequest(
                community_id=self.id,
                attribute=pb.AttributeDefinition(key=key, label=key.title(), type=type_, **fields),  # type: ignore[arg-type]
            ),
            metadata=self.members.auth(as_user),
        )
        attribute: pb.AttributeDefinition = reply.attribute
        return attribute

    async def attributes(self, *, include_retired: bool = False) -> list[str]:
        reply = await self.profiles.ListAttributes(
            pb.ListAttributesRequest(community_id=self.id, include_retired=include_retired),
            metadata=self.members.auth("olga"),
        )
        return [a.key for a in reply.attributes]

    async def update(self, user: str, paths: list[str], **fields: object) -> pb.Profile:
        reply = await self.profiles.UpdateProfile(
            pb.UpdateProfileRequest(
                profile=pb.Profile(community_id=self.id, **fields),  # type: ignore[arg-type]
                update_mask=FieldMask(paths=paths),
            ),
            metadata=self.members.auth(user),
        )
        profile: pb.Profile = reply.profile
        return profile

    async def profile(self, user: str, of: str = "") -> pb.Profile:
        reply = await self.profiles.GetProfile(
            pb.GetProfileRequest(community_id=self.id, user_id=of), metadata=self.members.auth(user)
        )
        profile: pb.Profile = reply.profile
        return profile


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


def value(**kind: object) -> pb.AttributeValue:
    return pb.AttributeValue(**kind)  # type: ignore[arg-type]


async def test_member_fills_in_a_profile_with_the_communitys_attributes(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana")
    exam = await club.define("exam", CHOICE, options=["ielts", "toefl"])
    assert (exam.type, list(exam.options), exam.version) == (CHOICE, ["ielts", "toefl"], 1)
    await club.define("hours_per_week", NUMBER)
    await club.define("exam_date", pb.ATTRIBUTE_TYPE_DATE)
    await club.define("wants_mentor", pb.ATTRIBUTE_TYPE_BOOLEAN)
    assert await club.attributes() == ["exam", "hours_per_week", "exam_date", "wants_mentor"]

    empty = await club.profile("ana")
    assert (empty.user_id, empty.version, dict(empty.attributes)) == ("ana", 0, {})

    saved = await club.update(
        "ana",
        ["interests", "learning_goals", "level", "time_zone", "birthday", "attributes"],
        interests=["speaking", "ielts", "speaking"],
        learning_goals=["band 7 in IELTS"],
        level=pb.PROFILE_LEVEL_INTERMEDIATE,
        time_zone="Asia/Shanghai",
        birthday=pb.Birthday(month=2, day=29),
        attributes={
            "exam": value(string_value="ielts"),
            "hours_per_week": value(number_value=7.5),
            "exam_date": value(date_value="2026-12-05"),
            "wants_mentor": value(bool_value=True),
        },
    )
    assert saved.version == 1
    again = await club.profile("ana")
    assert list(again.interests) == ["speaking", "ielts"]
    assert list(again.learning_goals) == ["band 7 in IELTS"]
    assert again.level == pb.PROFILE_LEVEL_INTERMEDIATE
    assert again.time_zone == "Asia/Shanghai"
    assert (again.birthday.month, again.birthday.day, again.birthday.year) == (2, 29, 0)
    assert again.attributes["exam"].string_value == "ielts"
    assert again.attributes["hours_per_week"].number_value == 7.5
    assert again.attributes["exam_date"].date_value == "2026-12-05"
    assert again.attributes["wants_mentor"].bool_value is True

    # One value at a time: set one, clear another, leave the rest.
    changed = await club.update(
        "ana",
        ["attributes.hours_per_week", "attributes.wants_mentor"],
        attributes={"hours_per_week": value(number_value=10)},
    )
    assert changed.version == 2
    assert set(changed.attributes) == {"exam", "exam_date", "hours_per_week"}
    assert changed.attributes["hours_per_week"].number_value == 10


async def test_values_the_schema_refuses_are_named_and_nothing_is_written(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana")
    await club.define("exam", CHOICE, options=["ielts", "toefl"])
    await club.define("hours_per_week", NUMBER)
    await club.update("ana", ["level"], level=pb.PROFILE_LEVEL_BEGINNER)

    error = await refused(
        club.update(
            "ana",
            ["level", "attributes"],
            level=pb.PROFILE_LEVEL_ADVANCED,
            attributes={
                "exam": value(string_value="gre"),
                "hours_per_week": value(string_value="lots"),
                "nickname": value(string_value="an"),
            },
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = field_violations(error)
    assert "not one of the choices: ielts, toefl" in found['attributes["exam"]']
    assert "set number_value" in found['attributes["hours_per_week"]']
    assert "unknown attribute 'nickname'" in found['attributes["nickname"]']

    bad_fields = await refused(
        club.update(
            "ana",
            ["time_zone", "birthday", "learning_goals", "interests", "favourite_colour"],
            time_zone="Mars/Olympus",
            birthday=pb.Birthday(month=2, day=30),
            learning_goals=["a", "b", "c", "d", "e", "f"],
            interests=["has space"],
        )
    )
    assert set(field_violations(bad_fields)) >= {
        "time_zone",
        "birthday",
        "learning_goals",
        "interests[0]",
        "update_mask",
    }

    kept = await club.profile("ana")
    assert (kept.version, kept.level, dict(kept.attributes)) == (1, pb.PROFILE_LEVEL_BEGINNER, {})


async def test_a_required_attribute_must_keep_a_value(members: RunningService) -> None:
    club = await Club.create(members)
    await club.join("ana")
    await club.define("exam", CHOICE, options=["ielts"], required=True)
    error = await refused(club.update("ana", ["level"], level=pb.PROFILE_LEVEL_BEGINNER))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is required" in field_violations(error)['attributes["exam"]']
    assert (await club.profile("ana")).version == 0
    saved = await club.update(
        "ana",
        ["level", "attributes.exam"],
        level=pb.PROFILE_LEVEL_BEGINNER,
        attributes={"exam": value(string_value="ielts")},
    )
    assert saved.version == 1


async def test_only_admins_shape_the_schema(members: RunningService) -> None:
    club = await Club.create(members)
    await club.join("ana")
    await club.join("mia", role=mpb.ROLE_MODERATOR)
    await club.join("adam", role=mpb.ROLE_ADMIN)
    for user in ("ana", "mia"):
        error = await refused(club.define("exam", CHOICE, as_user=user, options=["ielts"]))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await club.attributes() == []
    await club.define("exam", CHOICE, as_user="adam", options=["ielts"])

    stranger = await refused(
        club.profiles.ListAttributes(
            pb.ListAttributesRequest(community_id=club.id), metadata=members.auth("zed")
        )
    )
    assert stranger.code() == grpc.StatusCode.PERMISSION_DENIED
    member_view = await club.profiles.ListAttributes(
        pb.ListAttributesRequest(community_id=club.id), metadata=members.auth("ana")
    )
    assert [a.key for a in member_view.attributes] == ["exam"]

    retire = club.profiles.RetireAttribute(
        pb.RetireAttributeRequest(community_id=club.id, key="exam"), metadata=members.auth("mia")
    )
    assert (await refused(retire)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert await club.attributes() == ["exam"]


async def test_attribute_definitions_are_checked(members: RunningService) -> None:
    club = await Club.create(members)
    error = await refused(club.define("Bad Key", CHOICE))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"attribute.key", "attribute.options"}
    shadow = await refused(club.define("level", pb.ATTRIBUTE_TYPE_STRING))
    assert "standard profile field" in field_violations(shadow)["attribute.key"]
    untyped = await refused(club.define("city", pb.ATTRIBUTE_TYPE_UNSPECIFIED))
    assert "attribute.type" in field_violations(untyped)
    too_many = await refused(club.define("city", CHOICE, options=[str(i) for i in range(51)]))
    assert "at most 50" in field_violations(too_many)["attribute.options"]

    await club.define("city", pb.ATTRIBUTE_TYPE_STRING)
    twice = await refused(club.define("city", pb.ATTRIBUTE_TYPE_STRING))
    assert twice.code() == grpc.StatusCode.ALREADY_EXISTS
    for index in range(49):
        await club.define(f"a{index}", NUMBER)
    full = await refused(club.define("one_more", NUMBER))
    assert full.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(await club.attributes()) == 50


async def test_update_changes_labels_and_options_and_retire_drops_values(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana")
    await club.define("exam", CHOICE, options=["ielts"])
    await club.define("city", pb.ATTRIBUTE_TYPE_STRING)
    updated = await club.profiles.UpdateAttribute(
        pb.UpdateAttributeRequest(
            community_id=club.id,
            attribute=pb.AttributeDefinition(
                key="exam", label="Target exam", options=["ielts", "gre"]
            ),
            update_mask=FieldMask(paths=["label", "options"]),
        ),
        metadata=members.auth("olga"),
    )
    assert (updated.attribute.label, list(updated.attribute.options)) == (
        "Target exam",
        ["ielts", "gre"],
    )
    assert updated.attribute.version == 2
    typed = await refused(
        club.profiles.UpdateAttribute(
            pb.UpdateAttributeRequest(
                community_id=club.id,
                attribute=pb.AttributeDefinition(key="exam", type=NUMBER),
                update_mask=FieldMask(paths=["type"]),
            ),
            metadata=members.auth("olga"),
        )
    )
    assert typed.code() == grpc.StatusCode.INVALID_ARGUMENT

    await club.update(
        "ana",
        ["attributes"],
        attributes={"exam": value(string_value="gre"), "city": value(string_value="Lyon")},
    )
    retired = await club.profiles.RetireAttribute(
        pb.RetireAttributeRequest(community_id=club.id, key="city"), metadata=members.auth("olga")
    )
    assert retired.attribute.retired
    assert await club.attributes() == ["exam"]
    assert await club.attributes(include_retired=True) == ["exam", "city"]
    assert set((await club.profile("ana")).attributes) == {"exam"}
    gone = await refused(
        club.update("ana", ["attributes.city"], attributes={"city": value(string_value="Nice")})
    )
    assert 'attributes["city"]' in field_violations(gone)
    reused = await refused(club.define("city", pb.ATTRIBUTE_TYPE_STRING))
    assert reused.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_moderators_read_profiles_members_read_only_their_own(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana", "ben")
    await club.join("mia", role=mpb.ROLE_MODERATOR)
    await club.update(
        "ana",
        ["interests", "birthday"],
        interests=["grammar"],
        birthday=pb.Birthday(month=5, day=1, year=1990),
    )
    seen = await club.profile("mia", of="ana")
    assert list(seen.interests) == ["grammar"]
    assert not seen.HasField("birthday")  # not shown unless she chooses to
    await club.update("ana", ["birthday_visible"], birthday_visible=True)
    assert (await club.profile("mia", of="ana")).birthday.year == 1990
    assert (await club.profile("ana")).birthday.month == 5

    for target in ("ana", "nobody"):
        denied = await refused(club.profile("ben", of=target))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    missing = await refused(club.profile("mia", of="nobody"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    outsider = await refused(club.profile("zed"))
    assert outsider.code() == grpc.StatusCode.NOT_FOUND
    not_mine = await refused(club.update("zed", ["level"], level=pb.PROFILE_LEVEL_NATIVE))
    assert not_mine.code() == grpc.StatusCode.NOT_FOUND
    someone_else = await refused(
        club.update("ben", ["level"], user_id="ana", level=pb.PROFILE_LEVEL_NATIVE)
    )
    assert "profile.user_id" in field_violations(someone_else)

    await club.community.LeaveCommunity(
        mpb.LeaveCommunityRequest(community_id=club.id), metadata=members.auth("ana")
    )
    left = await refused(club.profile("mia", of="ana"))
    assert left.code() == grpc.StatusCode.NOT_FOUND


async def test_profiles_and_schemas_never_cross_communities(members: RunningService) -> None:
    english = await Club.create(members)
    python = await Club.create(members)
    for club in (english, python):
        await club.join("ana")
    await english.define("exam", CHOICE, options=["ielts"])
    await python.define("stack", pb.ATTRIBUTE_TYPE_STRING)

    await english.update(
        "ana",
        ["interests", "attributes"],
        interests=["ielts"],
        attributes={"exam": value(string_value="ielts")},
    )
    crossed = await refused(
        python.update("ana", ["attributes"], attributes={"exam": value(string_value="ielts")})
    )
    assert 'attributes["exam"]' in field_violations(crossed)
    await python.update("ana", ["interests"], interests=["django"])

    in_english = await english.profile("ana")
    in_python = await python.profile("ana")
    assert (list(in_english.interests), list(in_python.interests)) == (["ielts"], ["django"])
    assert set(in_english.attributes) == {"exam"}
    assert set(in_python.attributes) == set()
    assert await python.attributes() == ["stack"]


async def test_profile_is_in_the_export_and_erased_with_the_members_data(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana")
    await club.define("city", pb.ATTRIBUTE_TYPE_STRING)
    await club.update(
        "ana",
        ["interests", "attributes"],
        interests=["idioms"],
        attributes={"city": value(string_value="Lyon")},
    )
    exported = await club.community.ExportMyData(
        mpb.ExportMyDataRequest(community_id=club.id), metadata=members.auth("ana")
    )
    document = json.loads(exported.document)
    assert document["profile"]["interests"] == ["idioms"]
    assert document["profile"]["attributes"] == {"city": "Lyon"}

    await club.community.EraseMyData(
        mpb.EraseMyDataRequest(community_id=club.id, confirm=True), metadata=members.auth("ana")
    )
    async with members.deps.database.read() as session:
        profile = await ProfileRepository(session).get(club.id, "ana")
    assert (profile.version, profile.interests, dict(profile.attributes)) == (0, (), {})
