"""Personas: a member's profile in a community and the custom attributes the community
defines for it. Rules only, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import IntEnum

from services.kit.errors import AlreadyExists, FailedPrecondition
from services.members.communities.domain import is_time_zone


class AttributeType(IntEnum):
    STRING = 1
    NUMBER = 2
    BOOLEAN = 3
    DATE = 4
    CHOICE = 5


class Level(IntEnum):
    # Ordered, so that segments may ask for "intermediate or above".
    BEGINNER = 1
    INTERMEDIATE = 2
    ADVANCED = 3
    NATIVE = 4


MAX_ATTRIBUTES = 50
MAX_OPTIONS = 50
MAX_LEARNING_GOALS = 5
MAX_STRING_VALUE = 200
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
# Standard profile fields: custom keys may not shadow them, or a segment rule would be
# ambiguous about which one it means.
STANDARD_FIELDS = frozenset(
    {"interests", "learning_goals", "level", "time_zone", "birthday", "birthday_visible"}
)

# A custom value as held in memory: its Python type follows the attribute's type
# (str for string and choice, float for number, bool for boolean, date for date).
Value = str | float | bool | date


@dataclass(frozen=True)
class Attribute:
    community_id: str
    key: str
    label: str
    type: AttributeType
    required: bool = False
    options: tuple[str, ...] = ()
    position: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    retired_at: datetime | None = None
    version: int = 1

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


@dataclass(frozen=True)
class Birthday:
    month: int
    day: int
    year: int = 0


@dataclass(frozen=True)
class Profile:
    community_id: str
    user_id: str
    interests: tuple[str, ...] = ()
    learning_goals: tuple[str, ...] = ()
    level: Level | None = None
    time_zone: str = ""
    birthday: Birthday | None = None
    birthday_visible: bool = False
    attributes: Mapping[str, Value] = field(default_factory=dict)
    # 0 = never saved: every active member has an (empty) profile.
    version: int = 0
    updated_at: datetime | None = None


def check_definition(
    key: str, label: str, type_: int, options: Iterable[str]
) -> list[tuple[str, str]]:
    """Problems with a new attribute definition, as (field, message) pairs."""
    problems = []
    if not KEY_PATTERN.fullmatch(key):
        problems.append(
            ("key", "must be snake_case: 1-40 lowercase letters, digits or '_', from a letter")
        )
    elif key in STANDARD_FIELDS:
        problems.append(("key", f"{key!r} is a standard profile field; choose another key"))
    if type_ not in {int(t) for t in AttributeType}:
        problems.append(("type", "is required: string, number, boolean, date or choice"))
    problems.extend(check_label(label))
    problems.extend(
        check_options(AttributeType(type_) if type_ in set(AttributeType) else None, options)
    )
    return problems


def check_label(label: str) -> list[tuple[str, str]]:
    if not label.strip():
        return [("label", "is required")]
    if len(label) > 80:
        return [("label", f"must be at most 80 characters (got {len(label)})")]
    return []


def check_options(type_: AttributeType | None, options: Iterable[str]) -> list[tuple[str, str]]:
    values = list(options)
    if type_ is not AttributeType.CHOICE:
        return [("options", "only choice attributes have options")] if values else []
    problems = []
    if not values:
        problems.append(("options", "a choice attribute needs at least one option"))
    if len(values) > MAX_OPTIONS:
        problems.append(("options", f"must have at most {MAX_OPTIONS} entries"))
    seen: set[str] = set()
    for index, option in enumerate(values):
        if not option.strip() or len(option) > 80:
            problems.append((f"options[{index}]", "must be 1-80 characters"))
        elif option in seen:
            problems.append((f"options[{index}]", f"repeats {option!r}"))
        seen.add(option)
    return problems


def define(existing: list[Attribute], attribute: Attribute) -> Attribute:
    """`attribute` added to a schema that holds `existing` (retired ones included)."""
    if any(a.key == attribute.key for a in existing):
        raise AlreadyExists(
            f"attribute {attribute.key!r} is (or was) defined in this community; keys are "
            "never reused, choose another",
        )
    in_use = [a for a in existing if not a.retired]
    if len(in_use) >= MAX_ATTRIBUTES:
        raise FailedPrecondition(
            f"a community has at most {MAX_ATTRIBUTES} attributes in use; retire one first",
        )
    return replace(attribute, position=max((a.position for a in existing), default=0) + 1)


def change(
    attribute: Attribute,
    *,
    label: str | None = None,
    required: bool | None = None,
    options: tuple[str, ...] | None = None,
) -> Attribute:
    if attribute.retired:
        raise FailedPrecondition(f"attribute {attribute.key!r} is retired")
    return replace(
        attribute,
        label=attribute.label if label is None else label,
        required=attribute.required if required is None else required,
        options=attribute.options if options is None else options,
        version=attribute.version + 1,
    )


def retire(attribute: Attribute, now: datetime) -> Attribute:
    if attribute.retired:
        raise FailedPrecondition(f"attribute {attribute.key!r} is already retired")
    return replace(attribute, retired_at=now, required=False, version=attribute.version + 1)


def check_value(attribute: Attribute | None, key: str, value: object) -> str | None:
    """Why `value` cannot be stored for `key`, or None. `value` is what the client sent:
    str, float, bool, or a `date` already parsed from YYYY-MM-DD (a str if it did not parse)."""
    if attribute is None or attribute.retired:
        return f"unknown attribute {key!r}; ListAttributes shows the ones in use"
    expected = {
        AttributeType.STRING: "string_value",
        AttributeType.CHOICE: "string_value",
        AttributeType.NUMBER: "number_value",
        AttributeType.BOOLEAN: "bool_value",
        AttributeType.DATE: "date_value",
    }[attribute.type]
    kind = _kind(attribute.type)
    if not isinstance(value, kind) or (kind is float and isinstance(value, bool)):
        return f"is a {attribute.type.name.lower()} attribute: set {expected}"
    if isinstance(value, str) and len(value) > MAX_STRING_VALUE:
        return f"must be at most {MAX_STRING_VALUE} characters (got {len(value)})"
    if attribute.type is AttributeType.CHOICE and value not in attribute.options:
        return f"{value!r:.60} is not one of the choices: {', '.join(attribute.options)}"
    if isinstance(value, float) and value != value:  # NaN compares with nothing
        return "must be a number"
    return None


def _kind(type_: AttributeType) -> type:
    if type_ is AttributeType.NUMBER:
        return float
    if type_ is AttributeType.BOOLEAN:
        return bool
    if type_ is AttributeType.DATE:
        return date
    return str


def missing_required(schema: Iterable[Attribute], values: Mapping[str, Value]) -> list[str]:
    return [a.key for a in schema if a.required and not a.retired and a.key not in values]


def check_birthday(birthday: Birthday) -> str | None:
    if not 1 <= birthday.month <= 12:
        return "month must be 1-12"
    if birthday.year and not 1900 <= birthday.year <= datetime.now(UTC).year:
        return "year must be between 1900 and this year, or 0 to keep it private"
    # Without a year, 29 February is a real birthday; check it against a leap year.
    try:
        date(birthday.year or 2000, birthday.month, birthday.day)
    except ValueError:
        return f"{birthday.month}/{birthday.day} is not a day of the calendar"
    return None


def check_time_zone(name: str) -> str | None:
    if name and not is_time_zone(name):
        return f"{name!r:.60} is not an IANA time zone name (e.g. 'Europe/Berlin')"
    return None


def updated(profile: Profile, changes: Mapping[str, object], now: datetime) -> Profile:
    """The profile with `changes` (already validated) applied and its version bumped."""
    return replace(profile, **changes, version=profile.version + 1, updated_at=now)  # type: ignore[arg-type]


def as_seen_by_others(profile: Profile) -> Profile:
    """What a moderator sees: the birthday only when the member chose to show it."""
    return profile if profile.birthday_visible else replace(profile, birthday=None)
