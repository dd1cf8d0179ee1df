"""The pure rules of moderation: mute, ban, remove and their lifting by rank, and reports from
filing through decision to a single appeal decided by someone of higher rank."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.members.communities.domain import (
    FOREVER,
    Community,
    Membership,
    Role,
    join,
    new_community,
)
from services.members.moderation import reports
from services.members.moderation.domain import Action, moderate
from services.members.moderation.reports import Reason, Report, Resolution, State

pytestmark = pytest.mark.unit

HOUR = timedelta(hours=1)
POST = ("content", "post", "5b0b1d4e-54a5-4b71-9b8f-0cb7f6a5c1a2")


def community() -> Community:
    made, _ = new_community(name="Rust Learners", topic="programming", owner_user_id="owner")
    return made


def member(
    user_id: str,
    role: Role = Role.MEMBER,
    *,
    active: bool = True,
    banned_until: datetime | None = None,
    muted_until: datetime | None = None,
) -> Membership:
    return Membership(
        "c",
        user_id,
        role,
        datetime.now(UTC) - timedelta(days=3),
        active=active,
        version=2,
        banned_until=banned_until,
        muted_until=muted_until,
    )


MOD = member("mod", Role.MODERATOR)
ADMIN = member("admin", Role.ADMIN)
OWNER = member("owner", Role.OWNER)


# Moderating members


def test_a_moderator_mutes_a_member_until_a_time_or_until_lifted() -> None:
    until = datetime.now(UTC) + HOUR
    muted = moderate(community(), MOD, member("u1"), "u1", Action.MUTE, until)
    assert muted.muted_until == until
    assert muted.active
    assert muted.version == 3
    assert moderate(community(), MOD, member("u1"), "u1", Action.MUTE, None).muted_until == FOREVER


@pytest.mark.parametrize(
    ("actor", "target"),
    [
        (Role.MEMBER, Role.MEMBER),
        (Role.MODERATOR, Role.MODERATOR),
        (Role.MODERATOR, Role.ADMIN),
        (Role.ADMIN, Role.ADMIN),
    ],
)
@pytest.mark.parametrize("action", [Action.MUTE, Action.BAN, Action.REMOVE])
def test_nobody_moderates_their_equal_or_better(actor: Role, target: Role, action: Action) -> None:
    with pytest.raises(PermissionDenied) as refused:
        moderate(community(), member("a", actor), member("t", target), "t", action, None)
    assert f"a {actor.name.lower()} cannot moderate a {target.name.lower()}" in (
        refused.value.message
    )


@pytest.mark.parametrize(
    ("actor", "target"),
    [
        (Role.MODERATOR, Role.MEMBER),
        (Role.ADMIN, Role.MODERATOR),
        (Role.OWNER, Role.ADMIN),
        (None, Role.ADMIN),  # a platform operator
    ],
)
def test_a_higher_rank_moderates_a_lower_one(actor: Role | None, target: Role) -> None:
    by = None if actor is None else member("a", actor)
    removed = moderate(community(), by, member("t", target), "t", Action.REMOVE, None)
    assert not removed.active
    assert removed.left_at is not None


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("actor", [ADMIN, None], ids=["admin", "operator"])
def test_nobody_moderates_the_owner(actor: Membership | None, action: Action) -> None:
    with pytest.raises(PermissionDenied, match="owner"):
        moderate(community(), actor, OWNER, "owner", action, None)


@pytest.mark.parametrize("ago", [timedelta(0), HOUR, timedelta(days=400)])
@pytest.mark.parametrize("action", [Action.MUTE, Action.BAN])
def test_a_ban_or_mute_must_end_in_the_future(action: Action, ago: timedelta) -> None:
    with pytest.raises(InvalidArgument) as refused:
        moderate(community(), MOD, member("u1"), "u1", action, datetime.now(UTC) - ago)
    assert [v.field for v in refused.value.violations] == ["until"]


def test_a_ban_ends_membership_and_keeps_the_user_out() -> None:
    place = community()
    banned = moderate(place, MOD, member("u1"), "u1", Action.BAN, None)
    assert (banned.active, banned.banned_until, banned.version) == (False, FOREVER, 3)
    assert banned.left_at is not None
    with pytest.raises(PermissionDenied, match="banned"):
        join(place, banned, "u1", invited=True)


def test_a_user_who_never_joined_can_be_banned_ahead() -> None:
    place = community()
    until = datetime.now(UTC) + timedelta(days=7)
    banned = moderate(place, MOD, None, "stranger", Action.BAN, until)
    assert (banned.community_id, banned.user_id, banned.role) == (place.id, "stranger", Role.MEMBER)
    assert (banned.active, banned.version, banned.banned_until) == (False, 1, until)
    assert banned.left_at is None
    with pytest.raises(PermissionDenied):
        join(place, banned, "stranger")


def test_unban_lifts_only_a_current_ban() -> None:
    place = community()
    banned = moderate(place, MOD, member("u1"), "u1", Action.BAN, None)
    lifted = moderate(place, MOD, banned, "u1", Action.UNBAN, None)
    assert lifted.banned_until is None
    assert lifted.version == banned.version + 1
    assert join(place, lifted, "u1").active
    lapsed = member("u2", active=False, banned_until=datetime.now(UTC) - HOUR)
    for target in (lifted, lapsed, member("u3")):
        with pytest.raises(FailedPrecondition, match="not banned"):
            moderate(place, MOD, target, target.user_id, Action.UNBAN, None)


def test_unmute_lifts_only_a_current_mute() -> None:
    place = community()
    muted = member("u1", muted_until=datetime.now(UTC) + HOUR)
    assert moderate(place, MOD, muted, "u1", Action.UNMUTE, None).muted_until is None
    lapsed = member("u2", muted_until=datetime.now(UTC) - HOUR)
    for target in (lapsed, member("u3")):
        with pytest.raises(FailedPrecondition, match="not muted"):
            moderate(place, MOD, target, target.user_id, Action.UNMUTE, None)


@pytest.mark.parametrize("action", [Action.REMOVE, Action.MUTE, Action.UNMUTE, Action.UNBAN])
def test_only_bans_reach_users_who_are_not_members(action: Action) -> None:
    with pytest.raises(NotFound):
        moderate(community(), MOD, None, "stranger", action, None)


@pytest.mark.parametrize("action", [Action.REMOVE, Action.MUTE, Action.UNMUTE])
def test_a_member_who_left_is_not_removed_or_muted(action: Action) -> None:
    gone = member("u1", active=False, muted_until=datetime.now(UTC) + HOUR)
    with pytest.raises(NotFound):
        moderate(community(), MOD, gone, "u1", action, None)


# Reports


def file_about(
    target_user_id: str = "u2", target: tuple[str, str, str] | None = None, reporter: str = "u1"
) -> Report:
    return reports.file(
        "c",
        reporter,
        target_user_id=target_user_id,
        target=target,
        reason=Reason.HARASSMENT,
        details="  rude replies  ",
        evidence=["https://example.org/shot.png"],
    )


def decided(
    resolution: Resolution = Resolution.WARN, resolver: Membership = MOD, target: str = "u2"
) -> Report:
    return reports.resolve(file_about(target), resolver.user_id, resolver, resolution, "", None)


def appealed(resolution: Resolution = Resolution.WARN, resolver: Membership = MOD) -> Report:
    return reports.appeal(decided(resolution, resolver), "u2", "  it was a joke  ")


def test_a_filed_report_is_open_and_keyed_by_reporter_and_target() -> None:
    report = file_about()
    assert (report.state, report.details, report.version) == (State.OPEN, "rude replies", 1)
    assert report.target_key == "user:u2"
    assert report.open_key == "u1|user:u2"
    about_post = file_about(target=POST)
    assert about_post.about_content
    assert about_post.target_key == "content:post:" + POST[2]


def test_nobody_reports_themselves() -> None:
    with pytest.raises(InvalidArgument) as refused:
        file_about(target_user_id="u1", reporter="u1")
    assert [v.field for v in refused.value.violations] == ["target_user_id"]
    assert "yourself" in refused.value.message


@pytest.mark.parametrize(
    ("entry", "accepted"),
    [
        ("https://example.org/a.png", True),
        ("content:post:" + POST[2], True),
        ("events:event:" + POST[2], True),
        ("http://example.org/a.png", False),
        ("https://", False),
        ("https://example.org/a b.png", False),
        ("billing:invoice:" + POST[2], False),
        ("https://example.org/" + "a" * 500, False),
    ],
)
def test_evidence_is_an_https_url_or_a_content_reference(entry: str, accepted: bool) -> None:
    assert (reports.evidence_problem(entry) is None) is accepted


def test_a_moderator_decides_an_open_report() -> None:
    report = file_about()
    done = reports.resolve(report, "mod", MOD, Resolution.MUTE, "  calm down  ", None)
    assert done.state is State.RESOLVED
    assert done.decision is not None
    assert (done.decision.resolution, done.decision.resolver_user_id, done.decision.note) == (
        Resolution.MUTE,
        "mod",
        "calm down",
    )
    assert done.resolver_role == Role.MODERATOR
    assert done.version == report.version + 1
    assert done.open_key is None  # the reporter may report the same target again


@pytest.mark.parametrize("resolution", [Resolution.UPHOLD, Resolution.OVERTURN])
def test_an_open_report_gets_a_first_decision_not_an_appeal_one(resolution: Resolution) -> None:
    with pytest.raises(InvalidArgument) as refused:
        reports.resolve(file_about(), "mod", MOD, resolution, "", None)
    assert [v.field for v in refused.value.violations] == ["resolution"]


def test_content_with_an_unknown_author_is_dismissed_not_acted_on() -> None:
    orphan = file_about(target_user_id="", target=POST)
    for acting in (Resolution.WARN, Resolution.MUTE, Resolution.BAN):
        with pytest.raises(FailedPrecondition, match="no member"):
            reports.resolve(orphan, "mod", MOD, acting, "", None)
    assert reports.resolve(orphan, "mod", MOD, Resolution.DISMISS, "", None).state is (
        State.RESOLVED
    )


def test_a_decided_or_missing_report_is_not_decided_again() -> None:
    with pytest.raises(FailedPrecondition, match="already decided"):
        reports.resolve(decided(), "admin", ADMIN, Resolution.DISMISS, "", None)
    with pytest.raises(NotFound):
        reports.resolve(None, "mod", MOD, Resolution.DISMISS, "", None)


# Appeals


def test_the_member_acted_on_appeals_once() -> None:
    first = decided(Resolution.WARN)
    report = reports.appeal(first, "u2", "  it was a joke  ")
    assert (report.state, report.appeal_statement) == (State.APPEALED, "it was a joke")
    assert report.appealed_at is not None
    assert report.version == first.version + 1
    with pytest.raises(FailedPrecondition, match="appealed once"):
        reports.appeal(report, "u2", "again")
    upheld = reports.resolve(report, "admin", ADMIN, Resolution.UPHOLD, "", None)
    with pytest.raises(FailedPrecondition, match="appealed once"):
        reports.appeal(upheld, "u2", "and again")


@pytest.mark.parametrize("who", ["u1", "mod", "someone"])
def test_only_the_member_acted_on_may_appeal(who: str) -> None:
    with pytest.raises(NotFound):
        reports.appeal(decided(Resolution.BAN), who, "unfair")


def test_the_member_reported_decides_neither_the_report_nor_its_appeal() -> None:
    reported_admin = member("u2", Role.ADMIN)
    with pytest.raises(PermissionDenied, match="decided by someone else"):
        reports.resolve(file_about(), "u2", reported_admin, Resolution.DISMISS, "", None)
    with pytest.raises(PermissionDenied, match="decided by someone else"):
        reports.resolve(appealed(), "u2", reported_admin, Resolution.OVERTURN, "", None)


def test_an_undecided_or_missing_report_cannot_be_appealed() -> None:
    with pytest.raises(NotFound):
        reports.appeal(file_about(), "u2", "unfair")
    with pytest.raises(NotFound):
        reports.appeal(None, "u2", "unfair")


def test_a_dismissal_cannot_be_appealed() -> None:
    with pytest.raises(FailedPrecondition, match="warning, mute or ban"):
        reports.appeal(decided(Resolution.DISMISS), "u2", "but I wanted them banned")


@pytest.mark.parametrize("resolution", [Resolution.DISMISS, Resolution.BAN])
def test_an_appeal_is_upheld_or_overturned(resolution: Resolution) -> None:
    with pytest.raises(InvalidArgument) as refused:
        reports.resolve(appealed(), "admin", ADMIN, resolution, "", None)
    assert [v.field for v in refused.value.violations] == ["resolution"]


def test_the_first_resolver_does_not_decide_the_appeal() -> None:
    with pytest.raises(PermissionDenied, match="someone other"):
        reports.resolve(appealed(), "mod", MOD, Resolution.UPHOLD, "", None)
    by_owner = appealed(resolver=OWNER)
    with pytest.raises(PermissionDenied, match="someone other"):
        reports.resolve(by_owner, "owner", OWNER, Resolution.OVERTURN, "", None)


@pytest.mark.parametrize(
    ("first", "second", "allowed"),
    [
        (Role.MODERATOR, Role.MODERATOR, False),
        (Role.MODERATOR, Role.ADMIN, True),
        (Role.MODERATOR, Role.OWNER, True),
        (Role.ADMIN, Role.ADMIN, False),
        (Role.ADMIN, Role.OWNER, True),
        (Role.OWNER, Role.OWNER, False),
    ],
)
def test_an_appeal_goes_to_an_admin_or_owner_above_the_first_resolver(
    first: Role, second: Role, allowed: bool
) -> None:
    report = appealed(resolver=member("first", first))
    judge = member("second", second)
    if allowed:
        done = reports.resolve(report, "second", judge, Resolution.OVERTURN, "", None)
        assert done.state is State.RESOLVED
        assert done.appeal_decision is not None
        assert done.appeal_decision.resolver_user_id == "second"
    else:
        with pytest.raises(PermissionDenied, match="ranking above the first resolver"):
            reports.resolve(report, "second", judge, Resolution.OVERTURN, "", None)


def test_only_another_operator_decides_an_appeal_of_an_operators_decision() -> None:
    first = reports.resolve(file_about(), "operator-1", None, Resolution.BAN, "", None)
    assert first.resolver_role > Role.OWNER
    report = reports.appeal(first, "u2", "unfair")
    with pytest.raises(PermissionDenied, match="ranking above"):
        reports.resolve(report, "owner", OWNER, Resolution.OVERTURN, "", None)
    done = reports.resolve(report, "operator-2", None, Resolution.OVERTURN, "", None)
    assert done.state is State.RESOLVED


@pytest.mark.parametrize(
    ("first", "appeal_decision", "lifted"),
    [
        (Resolution.MUTE, Resolution.OVERTURN, Resolution.MUTE),
        (Resolution.BAN, Resolution.OVERTURN, Resolution.BAN),
        (Resolution.WARN, Resolution.OVERTURN, None),
        (Resolution.BAN, Resolution.UPHOLD, None),
    ],
)
def test_an_overturned_appeal_lifts_the_mute_or_ban(
    first: Resolution, appeal_decision: Resolution, lifted: Resolution | None
) -> None:
    done = reports.resolve(appealed(first), "admin", ADMIN, appeal_decision, "", None)
    assert reports.overturned_action(done) is lifted
    assert reports.overturned_action(decided(first)) is None  # not appealed yet
