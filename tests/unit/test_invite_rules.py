"""The pure rules of invite links: lifetimes, revoking, what makes an invite unusable, and a
code that is a bearer secret the invite itself never keeps."""

from __future__ import annotations

import hashlib
from dataclasses import astuple, replace
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.members.communities.domain import Community, archive, new_community
from services.members.communities.invites import (
    CODE_PATTERN,
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    PREFIX_LENGTH,
    Invite,
    check_usable,
    code_hash,
    new_invite,
    revoke,
)

pytestmark = pytest.mark.unit

HOUR = timedelta(hours=1)


def community() -> Community:
    made, _ = new_community(name="Rust Learners", topic="programming", owner_user_id="owner")
    return made


def invite(max_uses: int = 0) -> Invite:
    made, _ = new_invite(community(), "owner", None, max_uses)
    return made


def test_a_new_invite_lasts_a_week_by_default_and_is_usable() -> None:
    place = community()
    before = datetime.now(UTC)
    made, _ = new_invite(place, "owner", None, 5)
    assert (made.community_id, made.creator_user_id, made.max_uses, made.uses) == (
        place.id,
        "owner",
        5,
        0,
    )
    assert made.expires_at - made.created_at == DEFAULT_LIFETIME
    assert made.created_at >= before
    assert made.usable(datetime.now(UTC))
    check_usable(made)


def test_an_invite_may_end_when_its_creator_says_within_the_maximum() -> None:
    ends = datetime.now(UTC) + MAX_LIFETIME - HOUR
    made, _ = new_invite(community(), "owner", ends, 0)
    assert made.expires_at == ends


@pytest.mark.parametrize("offset", [timedelta(0), -HOUR, MAX_LIFETIME + HOUR, timedelta(days=365)])
def test_an_expiry_in_the_past_or_beyond_the_maximum_is_refused(offset: timedelta) -> None:
    with pytest.raises(InvalidArgument) as refused:
        new_invite(community(), "owner", datetime.now(UTC) + offset, 0)
    assert [v.field for v in refused.value.violations] == ["expire_time"]


def test_an_archived_community_makes_no_invites() -> None:
    with pytest.raises(FailedPrecondition, match="archived"):
        new_invite(archive(community(), ""), "owner", None, 0)


def test_the_code_is_url_safe_unguessable_and_new_each_time() -> None:
    place = community()
    codes = [new_invite(place, "owner", None, 0)[1] for _ in range(20)]
    assert all(CODE_PATTERN.fullmatch(code) for code in codes)
    assert len(set(codes)) == len(codes)
    assert min(len(code) for code in codes) >= 32


def test_the_invite_keeps_only_a_prefix_of_the_code_never_the_code() -> None:
    made, code = new_invite(community(), "owner", None, 0)
    assert made.code_prefix == code[:PREFIX_LENGTH]
    assert len(made.code_prefix) == PREFIX_LENGTH < len(code)
    stored = [value for value in astuple(made) if isinstance(value, str)]
    assert code not in stored
    assert not any(code in value for value in stored)


def test_the_code_is_looked_up_by_its_sha256() -> None:
    _, code = new_invite(community(), "owner", None, 0)
    _, other = new_invite(community(), "owner", None, 0)
    digest = code_hash(code)
    assert digest == hashlib.sha256(code.encode()).hexdigest()
    assert len(digest) == 64
    assert code not in digest
    assert code_hash(code) == digest
    assert code_hash(other) != digest


def test_a_revoked_invite_is_unusable_and_is_revoked_once() -> None:
    made = invite()
    revoked = revoke(made, made.id)
    assert revoked.revoked_at is not None
    assert made.revoked_at is None  # the original is untouched
    assert not revoked.usable(datetime.now(UTC))
    with pytest.raises(FailedPrecondition, match="revoked"):
        check_usable(revoked)
    with pytest.raises(FailedPrecondition, match="already revoked"):
        revoke(revoked, made.id)
    with pytest.raises(NotFound, match="inv-1"):
        revoke(None, "inv-1")


def test_an_expired_invite_is_unusable() -> None:
    made = invite()
    assert made.usable(made.expires_at - HOUR)
    assert not made.usable(made.expires_at)  # expiry is exclusive
    expired = replace(made, expires_at=datetime.now(UTC) - HOUR)
    assert not expired.usable(datetime.now(UTC))
    with pytest.raises(FailedPrecondition, match="expired"):
        check_usable(expired)


@pytest.mark.parametrize(("max_uses", "uses"), [(1, 1), (3, 3), (3, 4)])
def test_a_used_up_invite_is_unusable(max_uses: int, uses: int) -> None:
    used = replace(invite(max_uses), uses=uses)
    assert not used.usable(datetime.now(UTC))
    with pytest.raises(FailedPrecondition, match="used up"):
        check_usable(used)


@pytest.mark.parametrize(("max_uses", "uses"), [(3, 2), (0, 0), (0, 1_000_000)])
def test_an_invite_with_uses_left_or_no_limit_admits(max_uses: int, uses: int) -> None:
    open_invite = replace(invite(max_uses), uses=uses)
    assert open_invite.usable(datetime.now(UTC))
    check_usable(open_invite)
