"""Paging for listings: page-size and page-token checks with one wording, opaque tokens.

A token carries the position of the last item served (a time and an id) and a digest of
the query that made it, so it cannot be replayed against another query. A listing asks
`read_page` for the request's page, fetches `size + 1` rows after its position, and hands
them to `page_of`, which cuts the page and makes the next token.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from services.kit.validation import Violations

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

Position = tuple[datetime, str]

# What a token may hold: anything else is not a token this service wrote.
MAX_TOKEN_LENGTH = 1024
MAX_ID_LENGTH = 200
# A numeric position (a ledger id, an offset) stays well inside a signed 64-bit integer.
MAX_NUMBER_DIGITS = 15


class PagedRequest(Protocol):
    @property
    def page_size(self) -> int: ...

    @property
    def page_token(self) -> str: ...


@dataclass(frozen=True)
class PageRequest:
    size: int
    after: Position | None
    query: tuple[str, ...]

    @property
    def after_number(self) -> int | None:
        """The position's id as a number, for listings that page by a counter."""
        return int(self.after[1]) if self.after is not None else None


def read_page(
    problems: Violations,
    request: PagedRequest,
    query: Sequence[str],
    *,
    numeric: bool = False,
    default_size: int = DEFAULT_PAGE_SIZE,
) -> PageRequest:
    """The page `request` asks for; problems with its size or token go to `problems`.

    `query` names the listing and its filters; `numeric` listings page by an integer id."""
    check_page_size(problems, request.page_size, default_size)
    after = None
    if request.page_token:
        after = decode(request.page_token, query)
        if after is None or (numeric and not (after[1].isascii() and after[1].isdigit())):
            problems.add("page_token", "is not a token this query returned; start without it")
            after = None
    return PageRequest(request.page_size or default_size, after, tuple(query))


def check_page_size(
    problems: Violations, page_size: int, default_size: int = DEFAULT_PAGE_SIZE
) -> int:
    """The page size asked for (0 asks for the default); out of range goes to `problems`."""
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        problems.add(
            "page_size", f"must be between 0 (the default, {default_size}) and {MAX_PAGE_SIZE}"
        )
    return page_size or default_size


def page_of(
    found: Sequence[T], page: PageRequest, position: Callable[[T], Position]
) -> tuple[list[T], str]:
    """The first `page.size` of `found` (fetched with `page.size + 1`) and the next token."""
    items = list(found[: page.size])
    more = len(found) > page.size and bool(items)
    return items, encode(position(items[-1]), page.query) if more else ""


def encode(position: Position, query: Sequence[str]) -> str:
    created, item_id = position
    payload = {"t": created.isoformat(), "i": item_id, "q": _digest(query)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode(token: str, query: Sequence[str]) -> Position | None:
    """The position in `token`, or None unless it is exactly what `encode` wrote for `query`:
    a bounded token, a JSON object of three strings, an aware ISO time and a short id."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(payload, dict) or set(payload) != {"t", "i", "q"}:
        return None
    created, item_id, digest = payload["t"], payload["i"], payload["q"]
    if not all(isinstance(value, str) for value in (created, item_id, digest)):
        return None
    if digest != _digest(query) or not 0 < len(item_id) <= MAX_ID_LENGTH:
        return None
    if not item_id.isprintable() or (item_id.isdigit() and len(item_id) > MAX_NUMBER_DIGITS):
        return None
    try:
        position = datetime.fromisoformat(created)
    except ValueError:
        return None
    if position.utcoffset() is None:
        return None
    return position, item_id


def _digest(query: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(query).encode()).hexdigest()[:16]
