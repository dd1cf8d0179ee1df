"""The pure rules of recognition: level thresholds and privileges, badges, who may award."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.kit.errors import DomainError, InvalidArgument, PermissionDenied
from services.members.recognition import badges, levels, points

pytestmark = pytest.mark.unit


def test_default_levels_reach_each_threshold_exactly() -> None:
    ladder = levels.default_ladder()
    assert [ladder.level_for(p) for p in (-5, 0, 4, 5, 19, 20, 33014, 33015, 10**9)] == [
        1, 1, 1, 2, 2, 3, 8, 9, 9
    ]  # fmt: skip
    assert ladder.next_threshold(4) == 5
    assert ladder.next_threshold(33015) == 0


def test_privileges_are_held_from_their_level_up_and_ungated_ones_by_everyone() -> None:
    ladder = levels.ladder_of([(0, []), (10, ["give_kudos"]), (50, ["post_links", "give_kudos"])])
    assert ladder.privileges_at(1) == []
    assert ladder.privileges_at(3) == ["give_kudos", "post_links"]
    assert not ladder.holds(1, "give_kudos")
    assert ladder.holds(2, "give_kudos")
    assert ladder.holds(1, "create_invites")


@pytest.mark.parametrize(
    "steps",
    [[], [(1, [])], [(0, []), (5, []), (5, [])], [(0, ["teleport"])], [(n, []) for n in range(21)]],
)
def test_bad_ladders_are_refused(steps: list[tuple[int, list[str]]]) -> None:
    with pytest.raises(InvalidArgument) as refusal:
        levels.ladder_of(steps)
    assert [v.field for v in refusal.value.violations] == ["levels"]


def test_badges_follow_the_catalogue() -> None:
    assert badges.earned(badges.Progress()) == []
    assert badges.earned(badges.Progress(posts=1, points_total=99)) == ["first_post"]
    assert badges.earned(
        badges.Progress(posts=10, checkins=7, kudos_received=10, points_total=100, streak_days=30)
    ) == ["first_post", "posts_10", "checkins_7", "streak_30", "points_100", "helper"]


def _award(**changes: object) -> points.Award:
    fields: dict[str, object] = {
        "community_id": "c",
        "giver": "ana",
        "recipient": "ben",
        "amount": 1,
        "note": "",
        "moderator": False,
        "muted": False,
        "may_give_kudos": True,
        "local_day": date(2026, 3, 1),
        "now": datetime(2026, 3, 1, tzinfo=UTC),
        "request_id": "r",
    }
    fields.update(changes)
    return points.manual_award(**fields)  # type: ignore[arg-type]


def test_kudos_are_one_point_per_giver_recipient_and_day() -> None:
    kudos = _award()
    assert (kudos.reason, kudos.amount) == ("kudos", 1)
    assert kudos.source_event_id == "kudos:ana:ben:2026-03-01"
    assert _award(moderator=True, amount=-40).reason == "manual"


@pytest.mark.parametrize(
    ("changes", "kind", "said"),
    [
        ({"amount": 2}, InvalidArgument, "amount"),
        ({"amount": -1}, InvalidArgument, "amount"),
        ({"recipient": "ana"}, InvalidArgument, "user_id"),
        ({"muted": True}, PermissionDenied, "muted"),
        ({"may_give_kudos": False}, PermissionDenied, "give_kudos privilege"),
    ],
)
def test_what_members_may_not_award(
    changes: dict[str, object], kind: type[DomainError], said: str
) -> None:
    with pytest.raises(kind) as refusal:
        _award(**changes)
    assert said in refusal.value.message


def test_every_rule_reason_is_distinct() -> None:
    reasons = [rule.reason for rule in points.RULES.values()]
    assert len(reasons) == len(set(reasons))
