"""Every class of malformed input found by trying the API as an attacker would is refused at
the edge with INVALID_ARGUMENT naming the field, and changes nothing: malformed protobuf,
timestamps outside the protobuf range, enums outside the contract (also in fields an update
mask does not name), JSON nested thousands deep, tampered page tokens, NUL and control
characters, integers at the int64 limits. Tokens are covered in test_kit_auth.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from services.members.store.tables import communities, invites, memberships, outbox
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import profiles_service_pb2 as ppb
from studyhall.members.v1 import profiles_service_pb2_grpc as ppb_grpc
from tests.support.errors import field_violations
from tests.support.members import Hall, refused
from tests.support.services import RunningService

pytestmark = pytest.mark.service

PATH = "/studyhall.members.v1.MembersService/"


async def _rows(members: RunningService) -> tuple[int, ...]:
    counts = []
    async with members.deps.database.read() as session:
        for table in (communities, memberships, invites, outbox):
            counts.append(int(await session.scalar(select(func.count()).select_from(table)) or 0))
    return tuple(counts)


async def _raw(members: RunningService, method: str, body: bytes, user: str) -> bytes:
    call = members.channel.unary_unary(PATH + method)
    reply: bytes = await call(body, metadata=members.auth(user))
    return reply


def _nested_groups(depth: int) -> bytes:
    # Field 15, wire type 3 (start group) repeated, then the matching end groups (type 4).
    return bytes([15 << 3 | 3]) * depth + bytes([15 << 3 | 4]) * depth


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("random bytes", b"\xff\xfe\xfd\xfc\x00\x01\x02"),
        ("truncated", pb.GetCommunityRequest(community_id="x" * 36).SerializeToString()[:-5]),
        ("invalid UTF-8 in a string field", b"\x0a\x03\xff\xfe\xfd"),
        ("unknown groups nested 10,000 deep", _nested_groups(10_000)),
    ],
)
async def test_malformed_protobuf_is_invalid_argument_without_a_class_name(
    members: RunningService, what: str, body: bytes
) -> None:
    before = await _rows(members)
    for method in ("GetCommunity", "CreateCommunity", "JoinCommunity"):
        error = await refused(_raw(members, method, body, "mallory"))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, method)
        details = error.details() or ""
        assert "not a valid studyhall.members.v1." in details
        assert "Error" not in details
        assert "Exception" not in details
    assert await _rows(members) == before


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(-62_135_596_801, 0), (253_402_300_800, 0), (1_900_000_000, -1), (1_900_000_000, 10**9)],
)
async def test_timestamps_outside_the_protobuf_range_are_named(
    members: RunningService, seconds: int, nanos: int
) -> None:
    hall = await Hall.create(members)
    await hall.join("bob")
    before = await _rows(members)
    stamp = Timestamp(seconds=seconds, nanos=nanos)
    mute = await refused(
        hall.stub.ModerateMember(
            pb.ModerateMemberRequest(
                community_id=hall.id,
                user_id="bob",
                action=pb.MODERATION_ACTION_MUTE,
                reason="spam",
                until=stamp,
            ),
            metadata=hall.auth("olga"),
        )
    )
    invite = await refused(
        hall.stub.CreateInvite(
            pb.CreateInviteRequest(community_id=hall.id, expire_time=stamp),
            metadata=hall.auth("olga"),
        )
    )
    for error, field in ((mute, "until"), (invite, "expire_time")):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "0001-01-01 to 9999-12-31" in field_violations(error)[field]
    assert await _rows(members) == before


async def test_an_undefined_enum_is_refused_even_where_the_mask_does_not_name_it(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    before = await _rows(members)
    error = await refused(
        hall.stub.UpdateCommunity(
            pb.UpdateCommunityRequest(
                community=pb.Community(
                    id=hall.id,
                    name="Renamed",
                    visibility=pb.Visibility.ValueType(42),
                    join_policy=pb.JoinPolicy.ValueType(-7),
                ),
                update_mask=FieldMask(paths=["name"]),
                etag=hall.community.etag,
            ),
            metadata=hall.auth("olga"),
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    problems = field_violations(error)
    assert "Visibility values, got 42" in problems["community.visibility"]
    assert "JoinPolicy values, got -7" in problems["community.join_policy"]
    assert await _rows(members) == before


async def test_json_nested_thousands_deep_in_a_segment_rule_is_refused(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    profiles = ppb_grpc.ProfilesServiceStub(members.channel)
    deep = "[" * 5_000 + "]" * 5_000
    for call in (
        profiles.PreviewSegment(
            ppb.PreviewSegmentRequest(community_id=hall.id, rule=deep), metadata=hall.auth("olga")
        ),
        profiles.CreateSegment(
            ppb.CreateSegmentRequest(community_id=hall.id, name="deep", rule=deep),
            metadata=hall.auth("olga"),
        ),
    ):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nests deeper than 64 levels" in field_violations(error)["rule"]


def _token(**payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_a_page_token_with_one_value_changed_is_refused(members: RunningService) -> None:
    hall = await Hall.create(members)
    for user in ("ann", "bob", "cid"):
        await hall.join(user)
    first = await hall.stub.ListMembers(
        pb.ListMembersRequest(community_id=hall.id, page_size=1), metadata=hall.auth("olga")
    )
    padded = first.next_page_token + "=" * (-len(first.next_page_token) % 4)
    genuine = json.loads(base64.urlsafe_b64decode(padded))
    tampered = [
        _token(**{**genuine, "t": "2026-01-01T00:00:00"}),  # no time zone
        _token(**{**genuine, "t": "not a time"}),
        _token(**{**genuine, "t": 12}),
        _token(**{**genuine, "i": "x" * 5_000}),
        _token(**{**genuine, "i": "\x00"}),
        _token(**{**genuine, "q": "0" * 16}),
        _token(**{**genuine, "extra": 1}),
        _token(t=genuine["t"], i=genuine["i"]),
        "%%%",
        "A" * 2_000,
    ]
    for token in tampered:
        error = await refused(
            hall.stub.ListMembers(
                pb.ListMembersRequest(community_id=hall.id, page_size=1, page_token=token),
                metadata=hall.auth("olga"),
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, token
        assert "page_token" in field_violations(error)
    audit = await refused(
        hall.stub.ListAuditLog(
            pb.ListAuditLogRequest(
                community_id=hall.id,
                page_token=_token(**{**genuine, "i": "9" * 40}),
            ),
            metadata=hall.auth("olga"),
        )
    )
    assert audit.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("text", ["Daily\x00English", "Daily\x1b[31mEnglish", "tab\tand\x7fdel"])
async def test_nul_and_control_characters_are_refused_in_text_and_ids(
    members: RunningService, text: str
) -> None:
    hall = await Hall.create(members)
    before = await _rows(members)
    stub = pb_grpc.MembersServiceStub(members.channel)
    create = await refused(
        stub.CreateCommunity(
            pb.CreateCommunityRequest(name=text, topic="english"),
            metadata=members.auth("olga"),
        )
    )
    assert create.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in field_violations(create)
    moderate = await refused(
        hall.stub.ModerateMember(
            pb.ModerateMemberRequest(
                community_id=hall.id, user_id=text, action=pb.MODERATION_ACTION_REMOVE, reason="x"
            ),
            metadata=hall.auth("olga"),
        )
    )
    assert moderate.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user_id" in field_violations(moderate)
    assert await _rows(members) == before


async def test_newlines_and_tabs_stay_allowed_in_free_text(members: RunningService) -> None:
    hall = await Hall.create(members, mission="Read daily.\n\tThen talk about it.")
    assert hall.community.mission == "Read daily.\n\tThen talk about it."


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 2**31])
async def test_integers_at_the_int64_limits_are_refused_where_a_version_is_read(
    members: RunningService, value: int
) -> None:
    hall = await Hall.create(members)
    error = await refused(
        hall.stub.JoinCommunity(
            pb.JoinCommunityRequest(community_id=hall.id, accepted_rules_version=value),
            metadata=hall.auth("bob"),
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "accepted_rules_version" in field_violations(error)
