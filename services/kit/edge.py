"""What every request passes before its handler runs: it parses, and it keeps its contract.

The RPC wrapper hands each call's raw bytes here. A request that does not parse is
INVALID_ARGUMENT (never UNKNOWN with a class name). A parsed request is then checked, before
any I/O, against:
- the field rules its contract declares in proto/ as protovalidate annotations (visible to
  every caller through reflection);
- what annotations cannot say for every field of every message at once: timestamps inside
  the protobuf range, enum values the contract defines (in every field, also those a field
  mask does not name), strings without NUL or control characters (newline, tab and carriage
  return allowed in free text, none at all in ids and tokens), floating-point values that are
  finite.
Every problem is named by its field path in one `BadRequest`. Cross-field and business rules
stay with the handlers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import protovalidate
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from services.kit.errors import FieldViolation, InvalidArgument

# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
MAX_NANOS = 999_999_999

_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ID_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Fields whose values are identifiers or opaque tokens: no whitespace control at all.
_ID_SUFFIXES = ("_id", "_ids", "_token", "_code")
_ID_NAMES = {"id", "slug", "code", "key"}

_VALIDATOR = protovalidate.Validator()


def parse(message_class: type[Message], data: bytes) -> Message:
    """The request in `data`, or INVALID_ARGUMENT saying it is not one."""
    try:
        return message_class.FromString(data)
    except (DecodeError, RuntimeError, ValueError, RecursionError):
        # DecodeError covers truncation, bad wire types and invalid UTF-8; nesting beyond
        # the parser's limit surfaces as one of the others depending on the backend.
        raise InvalidArgument(
            [
                FieldViolation(
                    "",
                    f"the request is not a valid {message_class.DESCRIPTOR.full_name} "
                    "(malformed protobuf); send the message this method takes",
                )
            ]
        ) from None


def check(request: Message) -> None:
    """Refuse `request` with every field that breaks the contract, or return."""
    problems = list(_structural(request, ""))
    problems += [_from_protovalidate(v) for v in _VALIDATOR.collect_violations(request)]
    if problems:
        raise InvalidArgument(problems)


# What each field of a message type needs looked at, decided once per type:
# field name -> "timestamp" | "enum" | "text" | "id" | "float" | "message".
_PLANS: dict[str, dict[str, str]] = {}


def _plan(descriptor: Any) -> dict[str, str]:
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = {name: kind for name, kind in map(_kind, descriptor.fields) if kind}
        _PLANS[descriptor.full_name] = plan
    return plan


def _kind(field: Any) -> tuple[str, str]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        timestamp = field.message_type.full_name == "google.protobuf.Timestamp"
        return field.name, "timestamp" if timestamp else "message"
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.name, "enum"
    if field.type == FieldDescriptor.TYPE_STRING:
        return field.name, "id" if _is_id(field.name) else "text"
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return field.name, "float"
    return field.name, ""


def _is_id(name: str) -> bool:
    return name in _ID_NAMES or name.endswith(_ID_SUFFIXES)


def _structural(message: Message, prefix: str) -> Iterator[FieldViolation]:
    plan = _plan(message.DESCRIPTOR)
    field: Any
    for field, value in message.ListFields():
        kind = plan.get(field.name)
        if kind is None:
            continue
        path = prefix + field.name
        if kind == "message" and field.message_type.GetOptions().map_entry:
            yield from _map(field, value, path)
            continue
        items = list(enumerate(value)) if field.is_repeated else [(None, value)]
        for index, item in items:
            where = path if index is None else f"{path}[{index}]"
            yield from _CHECKS[kind](field, item, where)


def _check_timestamp(field: Any, stamp: Any, where: str) -> Iterator[FieldViolation]:
    if not MIN_SECONDS <= stamp.seconds <= MAX_SECONDS or not 0 <= stamp.nanos <= MAX_NANOS:
        yield FieldViolation(
            where,
            "must be a time from 0001-01-01 to 9999-12-31 UTC "
            f"(seconds {stamp.seconds}, nanos {stamp.nanos})",
        )


def _check_enum(field: Any, value: int, where: str) -> Iterator[FieldViolation]:
    if field.enum_type.values_by_number.get(value) is None:
        yield FieldViolation(
            where, f"must be one of the defined {field.enum_type.name} values, got {value}"
        )


def _check_text(field: Any, value: str, where: str) -> Iterator[FieldViolation]:
    if _TEXT_CONTROL.search(value):
        yield FieldViolation(
            where, "must not contain NUL or control characters (newline and tab may)"
        )


def _check_id(field: Any, value: str, where: str) -> Iterator[FieldViolation]:
    if _ID_CONTROL.search(value):
        yield FieldViolation(where, "must not contain NUL, control or whitespace characters")


def _check_float(field: Any, value: float, where: str) -> Iterator[FieldViolation]:
    if not math.isfinite(value):
        yield FieldViolation(where, f"must be a finite number, got {value}")


def _check_message(field: Any, value: Message, where: str) -> Iterator[FieldViolation]:
    yield from _structural(value, where + ".")


_CHECKS: dict[str, Callable[[Any, Any, str], Iterator[FieldViolation]]] = {
    "timestamp": _check_timestamp,
    "enum": _check_enum,
    "text": _check_text,
    "id": _check_id,
    "float": _check_float,
    "message": _check_message,
}


def _map(field: Any, value: Any, path: str) -> Iterator[FieldViolation]:
    key_field, value_field = field.message_type.fields
    for key in value:
        where = f"{path}[{key!r}]"
        if key_field.type == FieldDescriptor.TYPE_STRING and _ID_CONTROL.search(key):
            yield FieldViolation(where, "the key must not contain NUL or control characters")
        item = value[key]
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            yield from _structural(item, where + ".")
        elif value_field.type == FieldDescriptor.TYPE_STRING and _TEXT_CONTROL.search(item):
            yield FieldViolation(where, "must not contain NUL or control characters")


def _from_protovalidate(violation: Any) -> FieldViolation:
    proto = violation.proto
    parts: list[str] = []
    for element in proto.field.elements:
        name = element.field_name
        subscript = element.subscript
        if subscript is not None:
            value = subscript.value
            name += f"[{value!r}]" if isinstance(value, str) else f"[{value}]"
        parts.append(name)
    return FieldViolation(".".join(parts), proto.message or proto.rule_id)
