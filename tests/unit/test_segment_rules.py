"""Segment rules read into nodes: what a valid rule means, and every problem of an invalid
one named by the path of the node at fault."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from services.members.communities.domain import Role
from services.members.personas.profiles import Attribute, AttributeType, Level
from services.members.segments.rules import (
    All,
    AnyOf,
    Compare,
    InvalidRule,
    JoinedWithinDays,
    LastActiveBefore,
    Not,
    PointsAtLeast,
    RoleAtLeast,
    StreakAtLeast,
    fields_of,
    parse,
)

SCHEMA = [
    Attribute("c", "exam", "Exam", AttributeType.CHOICE, options=("ielts", "toefl")),
    Attribute("c", "hours", "Hours a week", AttributeType.NUMBER),
    Attribute("c", "exam_date", "Exam date", AttributeType.DATE),
    Attribute("c", "mentor", "Mentor?", AttributeType.BOOLEAN),
    Attribute("c", "city", "City", AttributeType.STRING),
    Attribute("c", "old", "Old", AttributeType.STRING, retired_at=datetime(2026, 1, 1, tzinfo=UTC)),
]
FIELDS = fields_of(SCHEMA)


def problems_of(rule: object) -> dict[str, str]:
    with pytest.raises(InvalidRule) as caught:
        parse(json.dumps(rule), FIELDS)
    return {problem.path: problem.message for problem in caught.value.problems}


def test_the_example_rule_reads_into_its_nodes() -> None:
    rule = {
        "all": [
            {"attribute": "level", "op": "eq", "value": "beginner"},
            {"joined_within_days": 30},
            {"any": [{"points_at_least": 20}, {"not": {"last_active_before": "2026-11-01"}}]},
        ]
    }
    node = parse(json.dumps(rule), FIELDS)
    assert isinstance(node, All)
    level, joined, either = node.children
    assert isinstance(level, Compare)
    assert (level.field.key, level.op, level.value) == ("level", "eq", int(Level.BEGINNER))
    assert joined == JoinedWithinDays(30)
    assert isinstance(either, AnyOf)
    assert either.children[0] == PointsAtLeast(20)
    assert either.children[1] == Not(LastActiveBefore(date(2026, 11, 1)))


def test_custom_attributes_are_typed_by_the_schema() -> None:
    node = parse(
        json.dumps(
            {
                "all": [
                    {"attribute": "exam", "op": "in", "value": ["ielts", "toefl"]},
                    {"attribute": "hours", "op": "gte", "value": 5},
                    {"attribute": "exam_date", "op": "lt", "value": "2027-01-01"},
                    {"attribute": "mentor", "op": "eq", "value": True},
                    {"attribute": "interests", "op": "contains", "value": "python"},
                    {"attribute": "city", "op": "exists"},
                    {"role_at_least": "moderator"},
                    {"streak_at_least": 7},
                ]
            }
        ),
        FIELDS,
    )
    assert isinstance(node, All)
    values = [child.value for child in node.children if isinstance(child, Compare)]
    assert values == [("ielts", "toefl"), 5.0, date(2027, 1, 1), True, "python", True]
    assert node.children[-2:] == (RoleAtLeast(Role.MODERATOR), StreakAtLeast(7))


def test_every_problem_is_reported_with_the_path_to_its_node() -> None:
    found = problems_of(
        {
            "all": [
                {"attribute": "level", "op": "eq", "value": "expert"},
                {"any": [{"attribute": "hours", "op": "gtt", "value": 3}, {"points_at_least": -1}]},
                {"attribute": "nickname", "op": "eq", "value": "x"},
                {"attribute": "exam", "op": "eq", "value": "gre"},
                {"attribute": "interests", "op": "gt", "value": "a"},
                {"joined_before": "yesterday"},
                {"role_at_least": "king"},
                {"frobnicate": 1},
                {"attribute": "old", "op": "exists"},
                {"attribute": "hours", "op": "eq", "value": "five"},
            ]
        }
    )
    assert found["rule.all[0].value"].startswith("level is one of beginner")
    assert found["rule.all[1].any[0].op"].startswith('unknown operator "gtt"; use one of eq, ne')
    assert "whole number" in found["rule.all[1].any[1].points_at_least"]
    assert found["rule.all[2].attribute"].startswith("unknown attribute 'nickname'")
    assert "'gre' is not one of ielts, toefl" in found["rule.all[3].value"]
    assert "does not apply to 'interests'" in found["rule.all[4].op"]
    assert "YYYY-MM-DD" in found["rule.all[5].joined_before"]
    assert "owner" in found["rule.all[6].role_at_least"]
    assert found["rule.all[7].frobnicate"].startswith("unknown node 'frobnicate'")
    # Retired attributes are out of rules as well as profiles.
    assert "unknown attribute 'old'" in found["rule.all[8].attribute"]
    assert "compare it with a number" in found["rule.all[9].value"]
    assert len(found) == 11


@pytest.mark.parametrize(
    ("rule", "path", "words"),
    [
        ("{", "rule", "not valid JSON"),
        ([], "rule", "must be an object"),
        ({"all": []}, "rule.all", "non-empty list"),
        ({"all": [{"points_at_least": 1}], "any": [{"points_at_least": 1}]}, "rule", "exactly one"),
        ({"attribute": "hours", "op": "in", "value": []}, "rule.value", "list of 1 to 100"),
        ({"attribute": "hours", "op": "lt"}, "rule.value", "is required"),
        ({"attribute": "mentor", "op": "exists", "value": "yes"}, "rule.value", "true"),
        ({"points_at_least": True}, "rule.points_at_least", "whole number"),
        ({"attribute": "hours", "op": "eq", "value": 1, "x": 2}, "rule.x", "only attribute"),
    ],
)
def test_malformed_rules_name_the_node(rule: object, path: str, words: str) -> None:
    text = rule if isinstance(rule, str) else json.dumps(rule)
    with pytest.raises(InvalidRule) as caught:
        parse(text, FIELDS)
    found = {problem.path: problem.message for problem in caught.value.problems}
    assert path in found, found
    assert words in found[path]


def test_rules_nest_at_most_eight_levels() -> None:
    rule: dict[str, object] = {"points_at_least": 1}
    for _ in range(7):
        rule = {"not": rule}
    parse(json.dumps(rule), FIELDS)  # eight levels: fine
    found = problems_of({"not": rule})
    deepest = "rule" + ".not" * 8
    assert "deeper than 8" in found[deepest]


def test_rules_hold_at_most_a_hundred_nodes() -> None:
    parse(json.dumps({"any": [{"points_at_least": i} for i in range(99)]}), FIELDS)
    found = problems_of({"any": [{"points_at_least": i} for i in range(100)]})
    assert found == {"rule": "has 101 nodes; a rule has at most 100"}


@pytest.mark.parametrize("text", ["1" + "0" * 400, "1e309", "NaN", "-Infinity"])
def test_numbers_a_float_cannot_hold_exactly_are_refused(text: str) -> None:
    rule = '{"attribute": "hours", "op": "gt", "value": ' + text + "}"
    with pytest.raises(InvalidRule) as caught:
        parse(rule, FIELDS)
    assert "must be a number from" in caught.value.problems[0].message


def test_json_nested_thousands_deep_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InvalidRule) as caught:
        parse("[" * 10_000 + "]" * 10_000, FIELDS)
    assert "nests deeper than 64 levels" in caught.value.problems[0].message
