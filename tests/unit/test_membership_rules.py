"""The pure rules of communities and their members: joining under each policy, bans, leaving,
roles by rank, ownership, optimistic updates, archiving and the community's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.members.communities.domain import (
    FOREVER,
    Community,
    JoinPolicy,
    JoinRequest,
    Membership,
    RequestState,
    Role,
    Rule,
    accept_rules,
    apply_to_join,
    archive,
    change_role,
    is_time_zone,
    join,
    leave,
    new_community,
    new_rules,
    require_rules_accepted,
    review,
    slugify,
    transfer,
    update,
)

pytestmark = pytest.mark.unit

OWNER = "owner-1"
HOUR = timedelta(hours=1)


def community(
    policy: JoinPolicy = JoinPolicy.OPEN, questions: list[str] | None = None
) -> Community:
    made, _ = new_community(
        name="Rust Learners",
        topic="programming",
        owner_user_id=OWNER,
        join_policy=policy,
        join_questions=questions,
    )
    return made


def member(
    user_id: str,
    role: Role = Role.MEMBER,
    *,
    active: bool = True,
    version: int = 1,
    banned_until: datetime | None = None,
    muted_until: datetime | None = None,
) -> Membership:
    return Membership(
        "c",
        user_id,
        role,
        datetime.now(UTC) - timedelta(days=3),
        active=active,
        version=version,
        banned_until=banned_until,
        muted_until=muted_until,
    )


def with_rules(place: Community) -> Community:
    changed, _ = new_rules(place, [Rule("Be kind", "No insults.")], OWNER, place.etag)
    return changed


# Creating a community


def test_the_creator_owns_a_new_open_public_community() -> None:
    made, owner = new_community(
        name="  Rust Learners ",
        topic=" programming ",
        owner_user_id=OWNER,
        tags=["rust", "beginners", "rust"],
    )
    assert (made.name, made.topic, made.slug) == ("Rust Learners", "programming", "rust-learners")
    assert made.tags == ["beginners", "rust"]
    assert made.join_policy is JoinPolicy.OPEN
    assert made.visible_to_outsiders()
    assert (owner.user_id, owner.role, owner.active) == (OWNER, Role.OWNER, True)
    assert owner.community_id == made.id
    assert made.etag == "v1"
    chinese, _ = new_community(name="学习小组", topic="study", owner_user_id=OWNER)
    assert chinese.slug == chinese.id[:8]  # no ASCII letters: the id's prefix


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Études & Café", "etudes-cafe"),
        ("  Night Owls: Study Club!  ", "night-owls-study-club"),
        ("学习小组", "fallback"),
        ("!!!", "fallback"),
    ],
)
def test_slugs_are_ascii_handles_with_a_fallback(name: str, slug: str) -> None:
    assert slugify(name, fallback="fallback") == slug


@pytest.mark.parametrize(
    ("name", "known"),
    [("Asia/Shanghai", True), ("UTC", True), ("Mars/Olympus", False), ("", False)],
)
def test_time_zones_are_iana_names(name: str, known: bool) -> None:
    assert is_time_zone(name) is known


# Joining under each policy


def test_anyone_joins_an_open_community_as_a_member_once() -> None:
    place = community()
    joined = join(place, None, "u1")
    assert (joined.user_id, joined.role, joined.active, joined.version) == (
        "u1",
        Role.MEMBER,
        True,
        1,
    )
    with pytest.raises(AlreadyExists):
        join(place, joined, "u1")


def test_an_approval_community_takes_a_request_not_a_member() -> None:
    place = community(JoinPolicy.APPROVAL, ["Why Rust?"])
    outcome = apply_to_join(place, None, None, "u1", ["Speed"])
    assert isinstance(outcome, JoinRequest)
    assert (outcome.state, outcome.answers, outcome.user_id) == (
        RequestState.PENDING,
        ["Speed"],
        "u1",
    )
    with pytest.raises(FailedPrecondition, match="approval"):
        join(place, None, "u1")


def test_a_second_request_while_one_is_pending_is_refused() -> None:
    place = community(JoinPolicy.APPROVAL)
    pending = apply_to_join(place, None, None, "u1", [])
    assert isinstance(pending, JoinRequest)
    with pytest.raises(AlreadyExists):
        apply_to_join(place, None, pending, "u1", [])


@pytest.mark.parametrize("answers", [[], ["one"], ["one", "two", "three"]])
def test_each_join_question_needs_exactly_one_answer(answers: list[str]) -> None:
    place = community(JoinPolicy.APPROVAL, ["Why?", "Level?"])
    with pytest.raises(InvalidArgument) as refused:
        apply_to_join(place, None, None, "u1", answers)
    assert [v.field for v in refused.value.violations] == ["answers"]


def test_an_invite_only_community_refuses_joins_without_an_invite() -> None:
    place = community(JoinPolicy.INVITE_ONLY)
    with pytest.raises(FailedPrecondition, match="invite"):
        join(place, None, "u1")
    with pytest.raises(FailedPrecondition, match="invite"):
        apply_to_join(place, None, None, "u1", [])


@pytest.mark.parametrize("policy", [JoinPolicy.APPROVAL, JoinPolicy.INVITE_ONLY])
def test_a_valid_invite_admits_at_once_under_any_policy(policy: JoinPolicy) -> None:
    place = community(policy, ["Why?"])
    outcome = apply_to_join(place, None, None, "u1", [], invited=True)
    assert isinstance(outcome, Membership)
    assert outcome.active
    assert outcome.role is Role.MEMBER


def test_an_approved_request_makes_a_member() -> None:
    place = community(JoinPolicy.APPROVAL)
    pending = apply_to_join(place, None, None, "u1", [])
    assert isinstance(pending, JoinRequest)
    reviewed, joined = review(pending, place, None, reviewer="mod", approve=True, reason="")
    assert reviewed.state is RequestState.APPROVED
    assert reviewed.reviewer_user_id == "mod"
    assert reviewed.reviewed_at is not None
    assert joined is not None
    assert (joined.user_id, joined.role, joined.active) == ("u1", Role.MEMBER, True)


def test_a_rejected_request_makes_no_member_and_the_applicant_may_ask_again() -> None:
    place = community(JoinPolicy.APPROVAL)
    pending = apply_to_join(place, None, None, "u1", [])
    assert isinstance(pending, JoinRequest)
    reviewed, joined = review(pending, place, None, reviewer="mod", approve=False, reason="spam")
    assert joined is None
    assert (reviewed.state, reviewed.reason) == (RequestState.REJECTED, "spam")
    again = apply_to_join(place, None, reviewed, "u1", [])
    assert isinstance(again, JoinRequest)
    assert again.state is RequestState.PENDING


def test_approval_is_no_way_round_a_ban_decided_while_the_request_waited() -> None:
    place = community(JoinPolicy.APPROVAL)
    pending = apply_to_join(place, None, None, "u1", [])
    assert isinstance(pending, JoinRequest)
    banned = Membership(
        place.id,
        "u1",
        Role.MEMBER,
        datetime.now(UTC),
        active=False,
        version=1,
        banned_until=FOREVER,
    )
    with pytest.raises(PermissionDenied, match="banned"):
        review(pending, place, banned, reviewer="mod", approve=True, reason="")
    reviewed, joined = review(pending, place, banned, reviewer="mod", approve=False, reason="no")
    assert (reviewed.state, joined) == (RequestState.REJECTED, None)


def test_approving_an_old_request_does_not_reset_a_member() -> None:
    place = community(JoinPolicy.APPROVAL)
    pending = apply_to_join(place, None, None, "u1", [])
    assert isinstance(pending, JoinRequest)
    moderator = Membership(place.id, "u1", Role.MODERATOR, datetime.now(UTC), version=3)
    with pytest.raises(AlreadyExists, match="already a member"):
        review(pending, place, moderator, reviewer="mod", approve=True, reason="")


def test_only_a_pending_request_can_be_reviewed() -> None:
    place = community(JoinPolicy.APPROVAL)
    pending = apply_to_join(place, None, None, "u1", [])
    assert isinstance(pending, JoinRequest)
    decided, _ = review(pending, place, None, reviewer="mod", approve=True, reason="")
    with pytest.raises(NotFound):
        review(decided, place, None, reviewer="mod", approve=False, reason="oops")
    with pytest.raises(NotFound):
        review(None, place, None, reviewer="mod", approve=True, reason="")


# Bans


def test_a_banned_user_cannot_join_even_with_an_invite() -> None:
    place = community()
    banned = member("u1", active=False, banned_until=FOREVER)
    with pytest.raises(PermissionDenied) as refused:
        join(place, banned, "u1")
    assert "until" not in refused.value.message  # a ban until lifted names no end
    with pytest.raises(PermissionDenied):
        join(place, banned, "u1", invited=True)


def test_a_banned_user_cannot_ask_to_join_and_is_told_until_when() -> None:
    place = community(JoinPolicy.APPROVAL)
    until = datetime.now(UTC) + timedelta(days=2)
    banned = member("u1", active=False, banned_until=until)
    with pytest.raises(PermissionDenied) as refused:
        apply_to_join(place, banned, None, "u1", [])
    assert f"{until:%Y-%m-%d %H:%M}" in refused.value.message


def test_after_a_ban_lapses_the_user_rejoins_with_a_clean_record_but_the_mute_stays() -> None:
    muted_until = datetime.now(UTC) + timedelta(days=5)
    lapsed = member(
        "u1",
        active=False,
        version=4,
        banned_until=datetime.now(UTC) - HOUR,
        muted_until=muted_until,
    )
    joined = join(community(), lapsed, "u1")
    assert joined.active
    assert joined.banned_until is None
    assert joined.muted_until == muted_until
    assert joined.version == 5


# Leaving


def test_a_member_leaves_once_and_the_membership_is_kept_inactive() -> None:
    current = member("u1", version=2)
    left = leave(current, "c", "u1")
    assert not left.active
    assert left.left_at is not None
    assert left.version == 3
    with pytest.raises(NotFound):
        leave(left, "c", "u1")
    with pytest.raises(NotFound):
        leave(None, "c", "u1")
    again = join(community(), left, "u1")
    assert again.active
    assert again.version == left.version + 1 == 4  # versions keep counting across rejoins


def test_the_owner_cannot_leave() -> None:
    with pytest.raises(FailedPrecondition, match="transfer ownership"):
        leave(member(OWNER, Role.OWNER), "c", OWNER)


# Roles by rank


@pytest.mark.parametrize(
    ("actor", "before", "after"),
    [
        (Role.ADMIN, Role.MEMBER, Role.MODERATOR),
        (Role.ADMIN, Role.MODERATOR, Role.MEMBER),
        (Role.OWNER, Role.MEMBER, Role.ADMIN),
        (Role.OWNER, Role.ADMIN, Role.MODERATOR),
        (None, Role.MEMBER, Role.ADMIN),  # a platform operator
    ],
)
def test_roles_change_by_the_actors_rank(actor: Role | None, before: Role, after: Role) -> None:
    target = member("u1", before, version=3)
    changed = change_role(None if actor is None else member("boss", actor), target, after)
    assert changed.role is after
    assert changed.version == 4


@pytest.mark.parametrize(
    ("actor", "before", "after"),
    [
        (Role.ADMIN, Role.MEMBER, Role.ADMIN),  # only the owner makes admins
        (Role.ADMIN, Role.ADMIN, Role.MEMBER),  # ... and unmakes them
        (Role.MODERATOR, Role.MEMBER, Role.MODERATOR),
        (Role.MEMBER, Role.MEMBER, Role.MODERATOR),
    ],
)
def test_roles_above_the_actors_reach_are_refused(actor: Role, before: Role, after: Role) -> None:
    with pytest.raises(PermissionDenied) as refused:
        change_role(member("boss", actor), member("u1", before), after)
    assert actor.name.lower() in refused.value.message


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_nobody_changes_their_own_role(role: Role) -> None:
    me = member("me", role)
    with pytest.raises(FailedPrecondition, match="own role"):
        change_role(me, me, Role.MEMBER)


def test_the_owners_role_changes_only_by_transfer_even_for_an_operator() -> None:
    owner = member(OWNER, Role.OWNER)
    with pytest.raises(FailedPrecondition, match="transferring ownership"):
        change_role(None, owner, Role.ADMIN)
    with pytest.raises(FailedPrecondition):
        change_role(member("admin", Role.ADMIN), owner, Role.MEMBER)


def test_setting_the_role_a_member_already_has_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="already moderator"):
        change_role(member("boss", Role.ADMIN), member("u1", Role.MODERATOR), Role.MODERATOR)


def test_only_active_members_have_roles_to_change() -> None:
    admin = member("boss", Role.ADMIN)
    with pytest.raises(NotFound):
        change_role(admin, member("u1", active=False), Role.MODERATOR)
    with pytest.raises(NotFound):
        change_role(admin, None, Role.MODERATOR)


# Ownership


def test_transfer_makes_the_successor_owner_and_the_old_owner_admin() -> None:
    place = community()
    owner = member(OWNER, Role.OWNER)
    successor = member("u1", Role.MODERATOR, version=2)
    changed, old, new = transfer(place, owner, successor)
    assert changed.owner_user_id == "u1"
    assert changed.version == place.version + 1
    assert (old.role, old.version) == (Role.ADMIN, owner.version + 1)
    assert (new.role, new.version) == (Role.OWNER, 3)
    # Now the former owner may leave, and the new one may not.
    assert not leave(old, place.id, OWNER).active
    with pytest.raises(FailedPrecondition):
        leave(new, place.id, "u1")


def test_ownership_goes_only_to_another_active_member() -> None:
    place = community()
    owner = member(OWNER, Role.OWNER)
    with pytest.raises(NotFound):
        transfer(place, owner, None)
    with pytest.raises(NotFound):
        transfer(place, owner, member("u1", active=False))
    with pytest.raises(FailedPrecondition, match="already own"):
        transfer(place, owner, owner)


# Updating and archiving


def test_an_update_applies_the_changes_and_bumps_the_etag() -> None:
    place = community()
    changed = update(
        place, {"name": "Rustaceans", "tags": ["b", "a", "b"], "time_zone": "UTC"}, place.etag
    )
    assert (changed.name, changed.tags, changed.time_zone) == ("Rustaceans", ["a", "b"], "UTC")
    assert changed.etag == "v2"
    assert place.name == "Rust Learners"  # the original is untouched
    with pytest.raises(ValueError, match="owner_user_id"):
        update(place, {"owner_user_id": "thief"}, place.etag)


def test_an_update_with_a_stale_etag_is_refused() -> None:
    place = community()
    newer = update(place, {"topic": "systems"}, place.etag)
    with pytest.raises(FailedPrecondition, match="etag v1"):
        update(newer, {"topic": "games"}, place.etag)


def test_an_update_without_an_etag_applies_unconditionally() -> None:
    newer = update(community(), {"topic": "systems"}, "")
    assert update(newer, {"topic": "games"}, "").topic == "games"


def test_archiving_stamps_the_time_happens_once_and_checks_the_etag() -> None:
    place = community()
    archived = archive(place, place.etag)
    assert archived.archived_at is not None
    assert archived.version == place.version + 1
    with pytest.raises(FailedPrecondition, match="already archived"):
        archive(archived, archived.etag)
    newer = update(place, {"topic": "systems"}, place.etag)
    with pytest.raises(FailedPrecondition, match="etag"):
        archive(newer, place.etag)


def test_an_archived_community_is_not_updated_handed_over_or_reviewing() -> None:
    place = community(JoinPolicy.APPROVAL)
    pending = apply_to_join(place, None, None, "u1", [])
    assert isinstance(pending, JoinRequest)
    archived = archive(place, "")
    with pytest.raises(FailedPrecondition, match="archived"):
        review(pending, archived, None, reviewer="mod", approve=True, reason="")
    with pytest.raises(FailedPrecondition, match="archived"):
        update(archived, {"topic": "games"}, archived.etag)
    with pytest.raises(FailedPrecondition, match="archived"):
        transfer(archived, member(OWNER, Role.OWNER), member("u1"))


@pytest.mark.parametrize("policy", list(JoinPolicy))
def test_an_archived_community_refuses_every_join(policy: JoinPolicy) -> None:
    archived = archive(community(policy), "")
    with pytest.raises(FailedPrecondition, match="archived"):
        apply_to_join(archived, None, None, "u1", [])
    with pytest.raises(FailedPrecondition, match="archived"):
        join(archived, None, "u1", invited=True)


# The community's rules


def test_new_rules_bump_the_rules_version_and_check_the_etag() -> None:
    place = community()
    changed, rules = new_rules(place, [Rule("Be kind", "No insults.")], OWNER, place.etag)
    assert changed.rules_version == rules.version == 1
    assert changed.version == place.version + 1
    assert (rules.author_user_id, rules.rules) == (OWNER, [Rule("Be kind", "No insults.")])
    again, _ = new_rules(changed, [], OWNER, changed.etag)
    assert again.rules_version == 2
    with pytest.raises(FailedPrecondition, match="etag"):
        new_rules(again, [], OWNER, changed.etag)
    with pytest.raises(FailedPrecondition, match="archived"):
        new_rules(archive(again, ""), [], OWNER, "")


def test_without_rules_nothing_needs_accepting() -> None:
    place = community()
    assert require_rules_accepted(place, 0) == 0
    assert join(place, None, "u1").accepted_rules_of(place)
    with pytest.raises(FailedPrecondition, match="no rules"):
        accept_rules(place, member("u1"), 1)


def test_joining_a_community_with_rules_needs_the_current_version_accepted() -> None:
    place = with_rules(with_rules(community()))  # rules version 2
    for stale in (0, 1, 3):
        with pytest.raises(FailedPrecondition, match="accepted_rules_version=2"):
            join(place, None, "u1", accepted_rules=stale)
    joined = join(place, None, "u1", accepted_rules=2)
    assert joined.accepted_rules_version == 2
    assert joined.accepted_rules_of(place)


def test_an_applicant_accepts_the_rules_and_the_approved_member_keeps_that() -> None:
    place = with_rules(community(JoinPolicy.APPROVAL))
    with pytest.raises(FailedPrecondition):
        apply_to_join(place, None, None, "u1", [])
    pending = apply_to_join(place, None, None, "u1", [], accepted_rules=1)
    assert isinstance(pending, JoinRequest)
    _, joined = review(pending, place, None, reviewer="mod", approve=True, reason="")
    assert joined is not None
    assert joined.accepted_rules_version == 1


def test_a_new_rules_version_asks_members_to_accept_again() -> None:
    place = with_rules(community())
    joined = join(place, None, "u1", accepted_rules=1)
    revised = with_rules(place)
    assert not joined.accepted_rules_of(revised)
    with pytest.raises(FailedPrecondition, match="version 1 is not the current"):
        accept_rules(revised, joined, 1)
    accepted = accept_rules(revised, joined, 2)
    assert accepted.accepted_rules_version == 2
    assert accepted.accepted_rules_of(revised)


def test_only_active_members_accept_rules() -> None:
    place = with_rules(community())
    with pytest.raises(NotFound):
        accept_rules(place, None, 1)
    with pytest.raises(NotFound):
        accept_rules(place, leave(member("u1"), place.id, "u1"), 1)
