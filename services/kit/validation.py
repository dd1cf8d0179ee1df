"""Collecting every problem with a request before answering, so one round trip tells all."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from services.kit.errors import FieldViolation, InvalidArgument


class Violations:
    """Accumulates field violations; `raise_if_any()` ends validation."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._items.append(FieldViolation(field, description))

    def text(self, field: str, value: str, *, required: bool = True, max_length: int = 200) -> None:
        if required and not value.strip():
            self.add(field, "is required")
        elif len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters (got {len(value)})")

    def uuid(self, field: str, value: str, *, required: bool = True) -> None:
        if not value:
            if required:
                self.add(field, "is required")
            return
        if not is_uuid(value):
            # One spelling only (as the server returns ids), so lookups never miss on case.
            self.add(field, f"must be a UUID in lowercase hyphenated form, got {value!r:.60}")

    def enum(
        self, field: str, value: int, allowed: Iterable[int], name: str, *, required: bool = False
    ) -> None:
        if value == 0 and required:
            self.add(field, "is required")
        elif value != 0 and int(value) not in {int(a) for a in allowed}:
            self.add(field, f"must be one of the defined {name} values, got {value}")

    def tags(self, field: str, values: list[str], *, max_count: int = 20) -> None:
        if len(values) > max_count:
            self.add(field, f"must have at most {max_count} entries")
        for index, tag in enumerate(values):
            if not _TAG.fullmatch(tag):
                self.add(f"{field}[{index}]", "must be 1-40 letters, digits, '-' or '_'")

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidArgument(self._items)


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


_TAG = re.compile(r"[\w-]{1,40}")


def json_nesting(text: str) -> int:
    """How deep the arrays and objects in JSON `text` nest, without parsing it: checked
    before `json.loads`, whose recursion a few thousand levels would exhaust."""
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
