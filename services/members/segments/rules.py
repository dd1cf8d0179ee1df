"""Segment rules: a JSON tree that selects members, read into typed nodes and checked against
the community's profile schema. Rules only, no I/O: the store compiles the nodes to SQL.

Every problem is reported at once, each with the path of the node at fault
(`rule.all[1].any[0].op`), so one round trip tells a client everything to fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from services.kit.errors import FailedPrecondition
from services.kit.validation import json_nesting
from services.members.communities.domain import Role
from services.members.personas.profiles import Attribute, Level

MAX_DEPTH = 8
MAX_NODES = 100
MAX_IN_VALUES = 100
MAX_DAYS = 36_500

# Kinds of attribute a comparison can address, and what each kind allows.
_OPERATORS: dict[str, tuple[str, ...]] = {
    "string": ("eq", "ne", "in", "exists"),
    "choice": ("eq", "ne", "in", "exists"),
    "boolean": ("eq", "ne", "exists"),
    "number": ("eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"),
    "date": ("eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"),
    "level": ("eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"),
    "list": ("contains", "exists"),
}
ALL_OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "exists")
_LEAVES = (
    "attribute",
    "role_at_least",
    "joined_within_days",
    "joined_before",
    "points_at_least",
    "level_at_least",
    "last_active_before",
    "inactive_for_days",
    "streak_at_least",
)
NODE_KINDS = ("all", "any", "not", *_LEAVES)


@dataclass(frozen=True)
class Segment:
    id: str
    community_id: str
    name: str
    description: str
    # The JSON text as the client wrote it; parsed again against the schema on every use,
    # since attributes it names may have been retired since.
    rule: str
    created_by_user_id: str
    created_at: datetime
    updated_at: datetime
    version: int = 1


def changed(segment: Segment, changes: Mapping[str, str], version: int, now: datetime) -> Segment:
    if version and version != segment.version:
        raise FailedPrecondition(
            f"segment {segment.id} changed since you read it (version {version}, now "
            f"{segment.version}); read it again and reapply your change",
        )
    return replace(segment, **changes, version=segment.version + 1, updated_at=now)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Field:
    """An attribute a rule may compare: a standard profile field or a custom attribute."""

    key: str
    kind: str
    custom: bool
    options: tuple[str, ...] = ()


STANDARD = {
    "level": Field("level", "level", custom=False),
    "time_zone": Field("time_zone", "string", custom=False),
    "interests": Field("interests", "list", custom=False),
}


def fields_of(schema: list[Attribute]) -> dict[str, Field]:
    """What rules may address in a community with this schema (retired attributes are out)."""
    fields = dict(STANDARD)
    for attribute in schema:
        if not attribute.retired:
            fields[attribute.key] = Field(
                attribute.key, attribute.type.name.lower(), custom=True, options=attribute.options
            )
    return fields


# --- The nodes ---

Scalar = str | float | bool | date | int


@dataclass(frozen=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str
    # A scalar of the field's kind (a Level's number for levels); a tuple of them for `in`;
    # a bool for `exists`; a tag for `contains`.
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class RoleAtLeast:
    role: Role


@dataclass(frozen=True)
class JoinedWithinDays:
    days: int


@dataclass(frozen=True)
class JoinedBefore:
    day: date


@dataclass(frozen=True)
class PointsAtLeast:
    points: int


@dataclass(frozen=True)
class LevelAtLeast:
    level: int


@dataclass(frozen=True)
class LastActiveBefore:
    day: date


@dataclass(frozen=True)
class InactiveForDays:
    days: int


@dataclass(frozen=True)
class StreakAtLeast:
    days: int


Node = (
    All
    | AnyOf
    | Not
    | Compare
    | RoleAtLeast
    | JoinedWithinDays
    | JoinedBefore
    | PointsAtLeast
    | LevelAtLeast
    | LastActiveBefore
    | InactiveForDays
    | StreakAtLeast
)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


# The numbers a rule compares with: well inside a float's exact integers.
MAX_NUMBER = 1e15

# Beyond the rule depth a reader accepts, but far below what would exhaust json.loads.
MAX_JSON_NESTING = 64


class InvalidRule(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


def parse(text: str, fields: Mapping[str, Field], *, root: str = "rule") -> Node:
    """The rule in `text` as nodes; raises InvalidRule listing every problem."""
    if json_nesting(text) > MAX_JSON_NESTING:
        raise InvalidRule(
            [Problem(root, f"nests deeper than {MAX_JSON_NESTING} levels; a rule is shallower")]
        )
    try:
        document = json.loads(text)
    except ValueError as error:
        raise InvalidRule([Problem(root, f"is not valid JSON: {error}")]) from None
    reader = _Reader(fields)
    node = reader.node(document, root, depth=1)
    if reader.count > MAX_NODES:
        reader.problems.insert(
            0, Problem(root, f"has {reader.count} nodes; a rule has at most {MAX_NODES}")
        )
    if reader.problems or node is None:
        raise InvalidRule(reader.problems or [Problem(root, "is empty")])
    return node


class _Reader:
    def __init__(self, fields: Mapping[str, Field]) -> None:
        self.fields = fields
        self.problems: list[Problem] = []
        self.count = 0

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def node(self, raw: object, path: str, depth: int) -> Node | None:
        self.count += 1
        if depth > MAX_DEPTH:
            self.fail(path, f"nests deeper than {MAX_DEPTH} levels; flatten the rule")
            return None
        if not isinstance(raw, dict) or not raw:
            self.fail(path, f"must be an object with one of: {', '.join(NODE_KINDS)}")
            return None
        if "attribute" in raw:
            return self.compare(raw, path)
        kinds = [key for key in raw if key in NODE_KINDS]
        unknown = [key for key in raw if key not in NODE_KINDS]
        for key in unknown:
            self.fail(f"{path}.{key}", f"unknown node {key!r}; use one of {', '.join(NODE_KINDS)}")
        if len(kinds) > 1:
            self.fail(path, f"has {' and '.join(kinds)}; a node is exactly one of them")
            return None
        if not kinds:
            return None
        kind = kinds[0]
        value = raw[kind]
        inner = f"{path}.{kind}"
        if kind in ("all", "any"):
            return self.group(kind, value, inner, depth)
        if kind == "not":
            child = self.node(value, inner, depth + 1)
            return Not(child) if child is not None else None
        return self.leaf(kind, value, inner)

    def group(self, kind: str, value: object, path: str, depth: int) -> Node | None:
        if not isinstance(value, list) or not value:
            self.fail(path, "must be a non-empty list of rules")
            return None
        children = [self.node(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(value)]
        if any(child is None for child in children):
            return None
        kept = tuple(child for child in children if child is not None)
        return All(kept) if kind == "all" else AnyOf(kept)

    def leaf(self, kind: str, value: object, path: str) -> Node | None:
        if kind == "role_at_least":
            names = [role.name.lower() for role in Role]
            if not isinstance(value, str) or value not in names:
                self.fail(path, f"must be one of {', '.join(names)}")
                return None
            return RoleAtLeast(Role[value.upper()])
        if kind in ("joined_before", "last_active_before"):
            day = _date(value)
            if day is None:
                self.fail(path, "must be a date, YYYY-MM-DD")
                return None
            return JoinedBefore(day) if kind == "joined_before" else LastActiveBefore(day)
        limit = MAX_DAYS if kind.endswith("days") else 2**31 - 1
        if not _whole(value) or not 0 <= int(value) <= limit:  # type: ignore[call-overload]
            self.fail(path, f"must be a whole number from 0 to {limit}")
            return None
        number = int(value)  # type: ignore[call-overload]
        constructors: dict[str, Any] = {
            "joined_within_days": JoinedWithinDays,
            "points_at_least": PointsAtLeast,
            "level_at_least": LevelAtLeast,
            "inactive_for_days": InactiveForDays,
            "streak_at_least": StreakAtLeast,
        }
        node: Node = constructors[kind](number)
        return node

    def compare(self, raw: dict[str, Any], path: str) -> Node | None:
        before = len(self.problems)
        for key in raw:
            if key not in ("attribute", "op", "value"):
                self.fail(f"{path}.{key}", "an attribute comparison has only attribute, op, value")
        key = raw["attribute"]
        field = self.fields.get(key) if isinstance(key, str) else None
        if field is None:
            known = ", ".join(sorted(self.fields))
            self.fail(f"{path}.attribute", f"unknown attribute {key!r:.60}; use one of {known}")
        op = raw.get("op")
        if op not in ALL_OPERATORS:
            self.fail(
                f"{path}.op",
                f"unknown operator {json.dumps(op)}; use one of " + ", ".join(ALL_OPERATORS),
            )
            return None
        if field is None:
            return None
        if op not in _OPERATORS[field.kind]:
            self.fail(
                f"{path}.op",
                f"{op!r} does not apply to {field.key!r} ({field.kind}); use one of "
                + ", ".join(_OPERATORS[field.kind]),
            )
            return None
        value = self.operand(field, op, raw, f"{path}.value")
        if value is None or len(self.problems) > before:
            return None
        return Compare(field, op, value)

    def operand(
        self, field: Field, op: str, raw: dict[str, Any], path: str
    ) -> Scalar | tuple[Scalar, ...] | None:
        if op == "exists":
            value = raw.get("value", True)
            if not isinstance(value, bool):
                self.fail(path, "exists takes true (the default) or false")
                return None
            return value
        if "value" not in raw:
            self.fail(path, "is required")
            return None
        value = raw["value"]
        if op == "contains":
            if not isinstance(value, str) or not value:
                self.fail(path, "must be a tag (a non-empty string)")
                return None
            return value
        if op == "in":
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
                self.fail(path, f"must be a list of 1 to {MAX_IN_VALUES} values")
                return None
            items = [self.scalar(field, item, f"{path}[{i}]") for i, item in enumerate(value)]
            if any(item is None for item in items):
                return None
            return tuple(item for item in items if item is not None)
        return self.scalar(field, value, path)

    def scalar(self, field: Field, value: object, path: str) -> Scalar | None:
        kind = field.kind
        if kind in ("string", "choice"):
            if not isinstance(value, str):
                self.fail(path, f"{field.key!r} is a {kind} attribute: compare it with a string")
                return None
            if kind == "choice" and value not in field.options:
                self.fail(path, f"{value!r:.60} is not one of {', '.join(field.options)}")
                return None
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(path, f"{field.key!r} is a number attribute: compare it with a number")
                return None
            # JSON has integers of any length (and Python's parser takes NaN and Infinity).
            if not -MAX_NUMBER <= value <= MAX_NUMBER:
                self.fail(path, f"must be a number from -{MAX_NUMBER:.0e} to {MAX_NUMBER:.0e}")
                return None
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                self.fail(path, f"{field.key!r} is a boolean attribute: compare it with true/false")
                return None
            return value
        if kind == "date":
            day = _date(value)
            if day is None:
                self.fail(path, f"{field.key!r} is a date attribute: compare it with YYYY-MM-DD")
            return day
        names = [level.name.lower() for level in Level]
        if not isinstance(value, str) or value not in names:
            self.fail(path, f"level is one of {', '.join(names)}")
            return None
        return int(Level[value.upper()])


def _whole(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _date(value: object) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
