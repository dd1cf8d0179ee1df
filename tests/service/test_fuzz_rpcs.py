"""Every RPC of every service, fed mutated and malformed requests by its authorized caller.

For each entry of the request catalogue (tests/support/catalogue.py), on SQLite and
PostgreSQL, Hypothesis sends:
- mutated valid requests: the entry's request with one to three fields (top-level or nested)
  replaced by edge or random values of their type, chosen from the message descriptors:
  empty, very long, NUL/ESC/control-character, multi-line and unicode strings, ids that only
  look like ids, integers at 0, -1 and the int32/int64 limits, enum numbers the contract does
  not define, timestamps outside years 1-9999 and nanos outside 0-999,999,999, repeated
  fields with thousands of elements, field masks naming unknown fields, page tokens that are
  random base64 or a real token's JSON with one value changed, segment rules nested
  thousands of levels deep;
- raw wire garbage, sent as bytes with a raw unary call: random bytes, a truncated valid
  request, invalid UTF-8 in a string field, deeply nested unknown groups, bad wire types and
  varints.

Each answer must not be INTERNAL or UNKNOWN, and a refused call (any status but OK) must leave
the service's database as it was: every table's rows are digested before and after. The
services run quiet (no relay, consumers or sweeps), so only the calls change the database.

The findings of one RPC are collected over all its examples and reported together, grouped
by status, message and the server-side exception, each with a request that caused it;
Hypothesis does not shrink (nothing is raised inside the examples), so the suite keeps its
time budget whatever it finds.

Hypothesis and asyncio: the tests are sync, with `@given` on an inner function; each example
drives its call with `loop.run_until_complete` on the event loop the running service lives on
(pytest-asyncio's session-scoped loop, on which the class-scoped service fixture was made),
which works because that loop is idle while a sync test runs.

One running service per process and store (a test class per process, its fixture scoped to
the class), its world prepared once and shared by the tests of its RPCs, which run in
catalogue order.

Budget: at most 3 minutes for both stores on a 2-core machine. EXAMPLES_PER_STORE examples are
shared out among the RPCs by how many fields a mutation may replace (`weight`; at least
MIN_EXAMPLES each); STUDYHALL_FUZZ_EXAMPLES=<n> raises every RPC to at least n examples for a
longer local run. Runs are derandomized (a fixed seed per RPC) and keep no example database.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeAlias, TypeVar

import grpc
import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.support import rpcs_analytics, rpcs_billing, rpcs_content, rpcs_events, rpcs_members
from tests.support.catalogue import (
    STORES,
    Process,
    Rpc,
    World,
    changed_tables,
    message_class,
    new_database,
    serve,
    snapshot,
)
from tests.support.services import RunningService

pytestmark = pytest.mark.service

PROCESSES = [
    rpcs_members.PROCESS,
    rpcs_content.PROCESS,
    rpcs_events.PROCESS,
    rpcs_billing.PROCESS,
    rpcs_analytics.PROCESS,
]
RPCS = [rpc for process in PROCESSES for rpc in process.catalogue]

# The budget: 180 seconds for both stores on a 2-core machine. An example costs 5-10 ms (the
# call, then a snapshot of every table; more as the world grows). 7000 examples a store (51 to
# 263 an RPC, see `weight`) took 60-70 s on SQLite and 60-67 s on PostgreSQL on such a machine,
# starting the services and preparing their worlds included: a margin for slower runners.
EXAMPLES_PER_STORE = 7000
MIN_EXAMPLES = 20
# Raises every RPC's examples to at least this many, for a longer run.
AT_LEAST = int(os.environ.get("STUDYHALL_FUZZ_EXAMPLES") or 0)
# A call that takes longer has hung; its DEADLINE_EXCEEDED is not itself a finding.
CALL_TIMEOUT = 10.0
# Set to a file name to get every finding as one JSON line (for collecting a report).
REPORT = os.environ.get("STUDYHALL_FUZZ_REPORT", "")

BAD_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


# --- Values ---------------------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_EDGES = [0, -1, 1, 2, 99, 100, 101, 1000, 10_001, INT32_MAX, INT32_MIN, INT32_MAX - 1]
INT64_EDGES = [*INT32_EDGES, 2**31, -(2**31) - 1, 2**53 + 1, INT64_MAX, INT64_MIN]
INF, NAN = float("inf"), float("nan")
FLOAT_EDGES = [0.0, -0.0, 1e308, -1e308, 5e-324, 2.0**53 + 1, INF, -INF, NAN]
# Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
TS_MIN, TS_MAX = -62_135_596_800, 253_402_300_799
NOW = int(time.time())
SECONDS_EDGES = [
    TS_MIN - 1,
    TS_MIN,
    TS_MAX,
    TS_MAX + 1,
    INT64_MIN,
    INT64_MAX,
    0,
    -1,
    NOW,
    NOW + 3600,
    NOW + 91 * 86400,
    NOW - 3600,
    INT32_MAX,
    INT32_MIN,
]
NANOS_EDGES = [0, -1, 999_999_999, 1_000_000_000, INT32_MAX, INT32_MIN]
MANY = [11, 21, 31, 51, 101, 1_001, 10_001]
LENGTHS = [40, 41, 64, 65, 80, 81, 100, 101, 120, 121, 128, 129, 200, 201, 500, 501]
LENGTHS += [1_000, 1_001, 2_000, 2_001, 10_000, 100_000, 1_000_000]
FILLERS = ["a", "é", "😀", "\x00", " ", "-", "0", "\n", "\u202e", "\x1b"]
EDGE_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "\x07\x08\x0b\x0c\x7f",
    "\x01\x02\x03",
    "line one\nline two",
    "\r\n",
    "\t",
    "\u2028\u2029",
    "\u202eevil",
    "\ufeffbom",
    "é",
    "👩‍🔬",
    "\U0010ffff",
    "\U0001d54a\U0001d565\U0001d566\U0001d555\U0001d56a",  # mathematical letters
    "null",
    "None",
    "undefined",
    "' OR '1'='1",
    "%",
    "_",
    "\\",
    "%s%s%n",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "../../etc/passwd",
    "0",
    "-1",
    "NaN",
    "1e999",
]
# Values of the fields whose names say what they hold.
NAMED_STRINGS: dict[str, list[str]] = {
    "time_zone": ["UTC", "Mars/Olympus", "../../etc/localtime", "UTC\x00", "Etc/GMT+14", "+25:00"],
    "date": ["12-25", "02-29", "02-30", "00-00", "13-01", "9999-12-31", "0000-01-01", "12-25x"],
    "currency": ["EUR", "eur", "XXX", "€", "EURO", "E\x00R"],
    "url": ["javascript:alert(1)", "http://", "https://" + "a" * 5000, "file:///etc/passwd"],
    "slug": ["a", "-a", "a-", "A", "a--b", "a" * 65, "ä"],
    "key": ["level", "interests", "1abc", "a" * 41, "A_b", "a-b", "retired"],
    "locale": ["en", "zh-Hans", "xx-YY-ZZ-WW", "e", "en_US"],
    "invite_code": ["a" * 15, "a" * 16, "a" * 101, "a" * 100, "=" * 20],
}
ID_SUFFIXES = ("_id", "_ids")
# A page token's JSON, as services/kit/paging.py writes it; when the world gives no real
# token for a listing, its values are made up (the query digest then does not match).
MADE_UP_TOKEN: dict[str, Any] = {"t": "2030-01-01T00:00:00+00:00", "i": "1", "q": "0" * 16}
JSON_EDGES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    2**64,
    -(2**63) - 1,
    1.5,
    1e308,
    INF,
    NAN,
    "",
    "x" * 10_000,
    [],
    {},
    {"a": 1},
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2030-01-01T00:00:00",
    "2024-02-30T00:00:00+00:00",
    "not a time",
    "²",
    "١٢٣",
    "9" * 5000,
    "99999999999999999999",
    "-1",
    "\u0000",
    "\ud800",
]
# Segment rules: what services/members/segments/rules.py reads.
RULE_KEYS = [
    "all",
    "any",
    "not",
    "attribute",
    "role_at_least",
    "joined_within_days",
    "joined_before",
    "points_at_least",
    "level_at_least",
    "last_active_before",
    "inactive_for_days",
    "streak_at_least",
]
RULE_LITERALS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1" + "0" * 5000,
    "1" + "0" * 400,
    "-1" + "0" * 400,
    "1.7976931348623157e308",
    "5e-324",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "-1",
    "0",
    "0.5",
    "true",
    "null",
    '""',
    '"owner"',
    '"god"',
    '"0001-01-01"',
    '"9999-12-31"',
    '"2024-13-45"',
    '"0001-01-01T00:00:00+23:59"',
    "[]",
    "{}",
]
# (attribute, operator) pairs of the world's profile schema (rpcs_members: "hours" is a number,
# "nickname" a string), the operators each kind takes first, then some it does not.
ORDERED = ["eq", "ne", "lt", "lte", "gt", "gte", "in"]
COMPARISONS = [
    *(("hours", op) for op in ORDERED),
    *(("level", op) for op in ORDERED),
    ("interests", "contains"),
    ("nickname", "eq"),
    ("nickname", "in"),
    ("time_zone", "eq"),
    ("hours", "exists"),
    ("hours", "contains"),
    ("interests", "gt"),
    ("no_such", "eq"),
    ("", ""),
    ("hours", "LIKE"),
]
INVALID_JSON = ["", "{", "}", "[", "null", "1", '"x"', '{"all": [}', "{'a': 1}", "\x00", '{"a":1}x']
DEPTHS = [9, 50, 1_000, 5_000, 100_000]
UNKNOWN_PATHS = [
    "",
    "*",
    "nope",
    "a.b.c",
    ".",
    "..",
    "name.",
    ".name",
    "NAME",
    "name ",
    "name,topic",
    "name\x00",
    "attributes.",
    "attributes.no_such",
    "attributes." + "k" * 1000,
    "attributes.hours.x",
    "community.name",
    "id",
    "create_time",
    "version",
    "etag",
    "retired",
    "user_id",
    "update_time",
]
# What one value of a valid rule becomes, as JSON text: numbers beyond int64, beyond double
# (400 digits) and beyond Python's digit limit, non-finite ones; odd strings, a lone
# surrogate; values of another type.
NUMBER_LITERALS = [
    "1" + "0" * 400,
    "-1" + "0" * 400,
    "1" + "0" * 5000,
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1.7976931348623157e308",
    "5e-324",
    "1e-400",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "2147483648",
    "-1",
    "0",
    "0.5",
    "-0.0",
]
STRING_LITERALS = [
    '""',
    '"\\u0000"',
    '"' + "x" * 10_000 + '"',
    '"\\ud800"',
    '"\\u202e"',
    '"BEGINNER"',
    '"owner"',
    '"0001-01-01"',
    '"9999-12-31"',
    '"2024-02-30"',
    '"%"',
    '"_"',
    '"\'"',
    '"\\\\"',
]
OTHER_LITERALS = ["null", "true", "[]", "{}", "[[[[]]]]", '{"all": []}']
MARKER = "\u0000marker"
OPAQUE = ("google.protobuf.Timestamp", "google.protobuf.FieldMask")


T = TypeVar("T")


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """Draw from one of the strategies, each as often as its weight says. (`st.one_of` merges
    repeated branches, so repeating one there does not weigh it.)"""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _repeat(pair: tuple[str, int]) -> str:
    return pair[0] * pair[1]


def long_strings() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(FILLERS), st.sampled_from(LENGTHS)).map(_repeat)


def generic_strings() -> st.SearchStrategy[str]:
    control = st.characters(categories=["Cc"]) | st.sampled_from(list("ab -_.\n"))
    return st.one_of(
        st.sampled_from(EDGE_STRINGS),
        long_strings(),
        st.text(max_size=40),
        st.text(alphabet=control, max_size=20),
    )


def id_strings(base: str) -> st.SearchStrategy[str]:
    """Values that look like the id `base` (a uuid or a user id) without being it."""
    variants = [
        base.upper(),
        f" {base}",
        f"{base}\n",
        f"{base}\x00",
        base[:-1],
        f"{base}0",
        base.replace("-", ""),
        "{" + base + "}",
        f"urn:uuid:{base}",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "-" * 36,
        "g" * 8 + base[8:],
        f"../{base}",
        "*",
        "' OR 1=1 --",
    ]
    return st.one_of(st.sampled_from(variants), st.uuids().map(str), generic_strings())


def page_tokens(real: str) -> st.SearchStrategy[str]:
    """Random base64, and a real (else made-up) token's JSON with one value changed."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = dict(MADE_UP_TOKEN)
    keys = sorted(payload)

    def changed(change: tuple[str, Any, bool]) -> str:
        key, value, drop = change
        token = dict(payload)
        if drop:
            token.pop(key, None)
        else:
            token[key] = value
        return _b64(json.dumps(token).encode())

    def nested(depth: int) -> str:
        return _b64(("[" * depth + "]" * depth).encode())

    values = st.sampled_from(JSON_EDGES) | st.text(max_size=20) | st.integers()
    return st.one_of(
        st.binary(max_size=80).map(_b64),
        st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
        st.tuples(st.sampled_from([*keys, "x"]), values, st.booleans()).map(changed),
        st.sampled_from(DEPTHS).map(nested),
        st.sampled_from([b"null", b"[]", b'"x"', b"{}", b"\xff\xfe", b"1"]).map(_b64),
        st.just(real + "A") if real else st.just("A"),
    )


def leaves(tree: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every scalar of a JSON tree, with its path (keys and indexes)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from leaves(value, (*path, index))
    else:
        yield path, tree


def rule_variants(base: str) -> st.SearchStrategy[str]:
    """The valid rule `base` with one value replaced by an edge literal of its kind (mostly)
    or of any kind."""
    try:
        tree = json.loads(base)
    except ValueError:
        return st.nothing()
    spots = list(leaves(tree))
    if not spots:
        return st.nothing()
    anything = NUMBER_LITERALS + STRING_LITERALS + OTHER_LITERALS

    def literals(value: Any) -> st.SearchStrategy[str]:
        if isinstance(value, int | float) and not isinstance(value, bool):
            mine = NUMBER_LITERALS
        elif isinstance(value, str):
            mine = STRING_LITERALS
        else:
            mine = OTHER_LITERALS
        return weighted((2, st.sampled_from(mine)), (1, st.sampled_from(anything)))

    def substitute(path: tuple[Any, ...], literal: str) -> str:
        copy = json.loads(base)
        holder = copy
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = MARKER
        return json.dumps(copy).replace(json.dumps(MARKER), literal)

    return st.sampled_from(spots).flatmap(
        lambda spot: literals(spot[1]).map(lambda literal: substitute(spot[0], literal))
    )


def json_rules() -> st.SearchStrategy[str]:
    """Segment rules: nested thousands of levels deep, extreme leaves, random and broken."""

    def deep(choice: tuple[str, int]) -> str:
        kind, depth = choice
        leaf = '{"points_at_least": 1}'
        if kind == "not":
            return '{"not": ' * depth + leaf + "}" * depth
        if kind == "all":
            return '{"all": [' * depth + leaf + "]}" * depth
        if kind == "list":
            return "[" * depth + "]" * depth
        return '{"a": ' * depth + "1" + "}" * depth

    def leaf(choice: tuple[str, str]) -> str:
        key, literal = choice
        return f'{{"{key}": {literal}}}'

    def comparison(choice: tuple[tuple[str, str], str]) -> str:
        (attribute, operator), literal = choice
        if operator == "in":
            literal = f"[{literal}]"
        return f'{{"attribute": "{attribute}", "op": "{operator}", "value": {literal}}}'

    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)

    def nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        keys = st.sampled_from([*RULE_KEYS, "x"])
        return st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3)

    random_json = st.recursive(
        scalars,
        nest,
        max_leaves=8,
    ).map(json.dumps)
    many_in = st.sampled_from(MANY).map(
        lambda n: json.dumps({"attribute": "hours", "op": "in", "value": list(range(n))})
    )
    many_all = st.sampled_from(MANY).map(
        lambda n: json.dumps({"all": [{"points_at_least": i} for i in range(n)]})
    )
    kinds = st.sampled_from(["not", "all", "list", "object"])
    return weighted(
        (1, st.tuples(kinds, st.sampled_from(DEPTHS)).map(deep)),
        (2, st.tuples(st.sampled_from(RULE_KEYS), st.sampled_from(RULE_LITERALS)).map(leaf)),
        (
            2,
            st.tuples(st.sampled_from(COMPARISONS), st.sampled_from(RULE_LITERALS)).map(comparison),
        ),
        (1, random_json),
        (1, many_in),
        (1, many_all),
        (1, st.sampled_from(INVALID_JSON)),
    )


def strings_for(field: FieldDescriptor, base: str, real_token: str) -> st.SearchStrategy[str]:
    name = field.name
    # The strategies made for a field come three times as often as generic strings.
    if name == "page_token":
        return weighted((3, page_tokens(real_token)), (1, generic_strings()))
    if name == "rule":
        # Mostly the valid rule with one value changed, then rules of every shape.
        return weighted((4, rule_variants(base)), (2, json_rules()), (1, generic_strings()))
    if name == "id" or name.endswith(ID_SUFFIXES) or name == "new_owner_user_id":
        return id_strings(base) | generic_strings()
    if name in NAMED_STRINGS:
        return st.sampled_from(NAMED_STRINGS[name]) | generic_strings()
    return generic_strings()


def integers_for(field: FieldDescriptor) -> st.SearchStrategy[int]:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.sampled_from([0, 1, 2**32 - 1]) | st.integers(0, 2**32 - 1)
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.sampled_from([0, 1, 2**64 - 1]) | st.integers(0, 2**64 - 1)
    if kind in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return st.sampled_from(INT64_EDGES) | st.integers(INT64_MIN, INT64_MAX)
    return st.sampled_from(INT32_EDGES) | st.integers(INT32_MIN, INT32_MAX)


def enums(enum: EnumDescriptor) -> st.SearchStrategy[int]:
    defined = [value.number for value in enum.values]
    outside = [-1, max(defined) + 1, max(defined) + 100, INT32_MAX, INT32_MIN]
    return st.sampled_from(defined + outside) | st.integers(INT32_MIN, INT32_MAX)


def timestamps() -> st.SearchStrategy[Timestamp]:
    return st.builds(
        Timestamp,
        seconds=st.sampled_from(SECONDS_EDGES) | st.integers(INT64_MIN, INT64_MAX),
        nanos=st.sampled_from(NANOS_EDGES) | st.integers(INT32_MIN, INT32_MAX),
    )


def field_masks(known: list[str]) -> st.SearchStrategy[FieldMask]:
    path = st.sampled_from(known + UNKNOWN_PATHS) | st.text(max_size=30)
    return st.one_of(
        st.lists(path, max_size=6).map(lambda paths: FieldMask(paths=paths)),
        st.sampled_from(MANY).map(lambda n: FieldMask(paths=[f"p{i}" for i in range(n)])),
        st.tuples(st.sampled_from(known or ["name"]), st.sampled_from(MANY)).map(
            lambda pair: FieldMask(paths=[pair[0]] * pair[1])
        ),
    )


@dataclass(frozen=True)
class Context:
    """What value strategies draw on besides the descriptors."""

    real_token: str  # a real next_page_token of the listing, or ""
    mask_paths: list[str]  # field names a mask of this request could name


def message_of(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None, field.full_name
    return field.message_type


def enum_of(field: FieldDescriptor) -> EnumDescriptor:
    assert field.enum_type is not None, field.full_name
    return field.enum_type


def is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and message_of(field).GetOptions().map_entry


def single_values(
    field: FieldDescriptor, base: Any, context: Context, depth: int
) -> st.SearchStrategy[Any]:
    """Values of one (non-repeated) field of `field`'s type."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return messages(message_of(field), context, depth)
    if kind == FieldDescriptor.TYPE_ENUM:
        return enums(enum_of(field))
    if kind == FieldDescriptor.TYPE_STRING:
        return strings_for(field, base if isinstance(base, str) else "", context.real_token)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64) | st.sampled_from([b"", b"\x00" * 100_000])
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.sampled_from(FLOAT_EDGES) | st.floats()
    return integers_for(field)


def messages(descriptor: Descriptor, context: Context, depth: int) -> st.SearchStrategy[Any]:
    """A whole message: empty, or each field set or not, to random values (two levels)."""
    if descriptor.full_name == "google.protobuf.Timestamp":
        return timestamps()
    if descriptor.full_name == "google.protobuf.FieldMask":
        return field_masks(context.mask_paths)
    cls = message_class(descriptor)
    if depth >= 2 or not descriptor.fields:
        return st.just(cls())
    fields = {
        f.name: st.none() | values_for(f, None, context, depth + 1) for f in descriptor.fields
    }

    def build(chosen: dict[str, Any]) -> Message:
        made = cls()
        for name, value in chosen.items():
            if value is not None:
                assign(made, descriptor.fields_by_name[name], value)
        return made

    return st.just(cls()) | st.fixed_dictionaries(fields).map(build)


def values_for(
    field: FieldDescriptor, base: Any, context: Context, depth: int = 0
) -> st.SearchStrategy[Any]:
    """Values for the whole of `field`: a scalar or message, a list, or a dict for a map."""
    if is_map(field):
        key_field, value_field = message_of(field).fields
        keys = single_values(key_field, "", context, depth)
        values = single_values(value_field, None, context, depth)
        return st.dictionaries(keys, values, max_size=4) | st.tuples(
            values, st.sampled_from(MANY)
        ).map(lambda pair: {f"k{i}": pair[0] for i in range(pair[1])})
    if field.is_repeated:
        element = single_values(field, None, context, depth)
        lists: st.SearchStrategy[Any] = st.lists(element, max_size=5) | st.tuples(
            element, st.sampled_from(MANY)
        ).map(lambda pair: [pair[0]] * pair[1])
        if field.type == FieldDescriptor.TYPE_STRING:
            lists = lists | st.sampled_from(MANY).map(lambda n: [f"t{i}" for i in range(n)])
        return lists
    return single_values(field, base, context, depth)


def assign(message: Message, field: FieldDescriptor, value: Any) -> None:
    """Set `field` of `message` to `value` (scalar, message, list or dict)."""
    current: Any = getattr(message, field.name)
    if is_map(field):
        current.clear()
        for key, item in value.items():
            if isinstance(item, Message):
                current[key].CopyFrom(item)
            else:
                current[key] = item
    elif field.is_repeated:
        del current[:]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                current.add().CopyFrom(item)
        else:
            current.extend(value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        current.CopyFrom(value)
    else:
        setattr(message, field.name, value)


# --- Mutations of a valid request -----------------------------------------------------------


@dataclass(frozen=True)
class Step:
    field: str
    index: int | None = None  # of an element of a repeated message field


Path_: TypeAlias = tuple[Step, ...]


def slots(descriptor: Descriptor, prefix: Path_ = (), depth: int = 0) -> Iterator[Path_]:
    """Every field a mutation may replace: top-level fields, and the fields of nested
    messages (of the first element of repeated ones) two levels down."""
    for each in descriptor.fields:
        path = (*prefix, Step(each.name))
        yield path
        nested = each.type == FieldDescriptor.TYPE_MESSAGE and not is_map(each)
        if nested and message_of(each).full_name not in OPAQUE and depth < 2:
            if each.is_repeated:
                yield from slots(message_of(each), (*prefix, Step(each.name, 0)), depth + 1)
            else:
                yield from slots(message_of(each), path, depth + 1)


def resolve(message: Message, path: Path_) -> tuple[Message, FieldDescriptor]:
    """The message holding the last field of `path` (made on the way), and that field."""
    parent: Any = message
    for step in path[:-1]:
        child: Any = getattr(parent, step.field)
        if step.index is not None:
            while len(child) <= step.index:
                child.add()
            child = child[step.index]
        parent = child
    return parent, parent.DESCRIPTOR.fields_by_name[path[-1].field]


def field_at(descriptor: Descriptor, path: Path_) -> FieldDescriptor:
    for step in path[:-1]:
        descriptor = message_of(descriptor.fields_by_name[step.field])
    return descriptor.fields_by_name[path[-1].field]


def value_at(message: Message, path: Path_) -> Any:
    current: Any = message
    for step in path:
        current = getattr(current, step.field)
        if step.index is not None:
            current = current[step.index] if len(current) > step.index else None
        if current is None:
            return None
    return current


@dataclass(frozen=True)
class Mutation:
    path: Path_
    value: Any

    def apply(self, request: Message) -> None:
        parent, field = resolve(request, self.path)
        assign(parent, field, self.value)

    def describe(self) -> str:
        where = ".".join(s.field + ("" if s.index is None else f"[{s.index}]") for s in self.path)
        return f"{where}={short(self.value)}"


def short(value: Any, limit: int = 120) -> str:
    """A value as a failure message quotes it: long ones cut, with their size."""
    if isinstance(value, Message):
        text = text_format.MessageToString(value, as_one_line=True)
        size = value.ByteSize()
        return f"{type(value).__name__}({cut(text, limit)})" + (
            f" [{size} bytes]" if size > limit else ""
        )
    if isinstance(value, list):
        head = ", ".join(short(item, 40) for item in value[:3])
        return f"[{head}{', ...' if len(value) > 3 else ''}] ({len(value)} elements)"
    if isinstance(value, dict):
        head = ", ".join(f"{short(k, 40)}: {short(v, 40)}" for k, v in list(value.items())[:3])
        return f"{{{head}{', ...' if len(value) > 3 else ''}}} ({len(value)} entries)"
    text = repr(value)
    if len(text) > limit:
        length = f" (len {len(value)})" if isinstance(value, str | bytes) else ""
        return cut(text, limit) + length
    return text


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def special(field: FieldDescriptor) -> bool:
    if field.name in ("rule", "page_token"):
        return True
    return field.type == FieldDescriptor.TYPE_MESSAGE and message_of(field).full_name in OPAQUE


def weight(rpc: Rpc) -> float:
    """How much of the budget an RPC gets: the square root of how many fields a mutation may
    replace (special ones counted three times), so a one-field read gets a few dozen examples
    and a request of nested messages a few hundred."""
    descriptor = rpc.descriptor.input_type
    slots_ = sum(3 if special(field_at(descriptor, path)) else 1 for path in slots(descriptor))
    return math.sqrt(max(slots_, 1))


def examples_for(rpc: Rpc) -> int:
    share = EXAMPLES_PER_STORE * weight(rpc) / sum(weight(each) for each in RPCS)
    return max(MIN_EXAMPLES, round(share), AT_LEAST)


def mutations(rpc: Rpc, base: Message, context: Context) -> st.SearchStrategy[list[Mutation]]:
    descriptor = rpc.descriptor.input_type
    # Fields with strategies of their own (rules, page tokens, masks, times) are picked three
    # times as often as the others.
    paths = [
        path
        for path in slots(descriptor)
        for _ in range(3 if special(field_at(descriptor, path)) else 1)
    ]
    strategies = [
        values_for(field_at(descriptor, path), value_at(base, path), context) for path in paths
    ]
    one = st.integers(0, len(paths) - 1).flatmap(
        lambda i: strategies[i].map(lambda value: Mutation(paths[i], value))
    )
    # Mostly one field at a time: with several wrong fields, validation stops at the first.
    count = st.sampled_from([1, 1, 1, 2, 3])
    return count.flatmap(lambda n: st.lists(one, min_size=n, max_size=n))


# --- Raw wire garbage -------------------------------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


@dataclass(frozen=True)
class Raw:
    """Bytes made from the valid request's serialization."""

    label: str
    make: Callable[[bytes], bytes]


INVALID_UTF8 = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"abc\xfe", b"\x80"]


def raw_garbage(descriptor: Descriptor) -> st.SearchStrategy[Raw]:
    fields = list(descriptor.fields)
    strings = [f.number for f in fields if f.type == FieldDescriptor.TYPE_STRING] or [1]
    numbers = [f.number for f in fields] or [1]
    varints = [
        f.number
        for f in fields
        if f.type
        in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_BOOL)
    ] or numbers

    def random_bytes(data: bytes) -> Raw:
        return Raw(f"random bytes {data!r:.80}", lambda base: data)

    def truncated(fraction: float) -> Raw:
        def make(base: bytes) -> bytes:
            return base[: min(int(len(base) * fraction), max(len(base) - 1, 0))]

        return Raw(f"the valid request truncated to {fraction:.0%} of its bytes", make)

    def bad_utf8(choice: tuple[int, bytes]) -> Raw:
        number, junk = choice
        extra = tag(number, 2) + varint(len(junk)) + junk
        return Raw(f"string field {number} holding invalid UTF-8 {junk!r}", lambda b: b + extra)

    def groups(choice: tuple[int, int, bool]) -> Raw:
        number, depth, closed = choice
        extra = tag(number, 3) * depth + (tag(number, 4) * depth if closed else b"")
        label = f"unknown group {number} nested {depth} deep{'' if closed else ', unclosed'}"
        return Raw(label, lambda base: base + extra)

    def wire_type(choice: tuple[int, int]) -> Raw:
        number, kind = choice
        extra = tag(number, kind) + b"\x01\x02\x03\x04\x05\x06\x07\x08"
        return Raw(f"field {number} with wire type {kind}", lambda base: base + extra)

    def overlong(number: int) -> Raw:
        extra = tag(number, 0) + b"\xff" * 10 + b"\x01"
        return Raw(f"field {number} with an 11-byte varint", lambda base: base + extra)

    def wide(choice: tuple[int, int]) -> Raw:
        number, value = choice
        extra = tag(number, 0) + varint(value)
        return Raw(f"varint field {number} = {value}", lambda base: base + extra)

    def claims(choice: tuple[int, int]) -> Raw:
        number, length = choice
        extra = tag(number, 2) + varint(length) + b"abc"
        return Raw(f"field {number} claiming {length} bytes", lambda base: base + extra)

    return st.one_of(
        st.binary(min_size=1, max_size=256).map(random_bytes),
        st.floats(0, 1).map(truncated),
        st.tuples(st.sampled_from(strings), st.sampled_from(INVALID_UTF8)).map(bad_utf8),
        st.tuples(
            st.sampled_from([1000, 2**29 - 1, *numbers]),
            st.sampled_from([10, 99, 100, 101, 1_000, 100_000]),
            st.booleans(),
        ).map(groups),
        st.tuples(st.sampled_from(numbers), st.sampled_from([1, 5, 6, 7])).map(wire_type),
        st.sampled_from(numbers).map(overlong),
        st.tuples(st.sampled_from(varints), st.sampled_from([2**32, 2**40, 2**63, 2**64 - 1])).map(
            wide
        ),
        st.tuples(st.sampled_from(numbers), st.sampled_from([2**31, 2**32 + 3, 2**63])).map(claims),
        st.just(Raw("field number 0", lambda base: b"\x00\x01" + base)),
    )


# --- Sending and judging --------------------------------------------------------------------


class ServerErrors(logging.Handler):
    """The errors the in-process service logged during a call (the exception behind an
    INTERNAL answer is logged, not sent)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            lines = str(error).strip().splitlines() or [""]
            self.seen.append(f"{type(error).__module__}.{type(error).__name__}: {lines[0]}")
        else:
            self.seen.append(record.getMessage())


@dataclass
class Target:
    """One running process on one store, its world, and what the examples share."""

    process: Process
    store: str
    running: RunningService
    world: World
    loop: asyncio.AbstractEventLoop
    errors: ServerErrors
    baseline: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    rpc: str
    store: str
    problem: str  # "status" or "refusal changed the database"
    code: str
    details: str
    server_error: str
    changed: str
    sent: str

    @property
    def kind(self) -> tuple[str, ...]:
        return (self.problem, self.code, normalize(self.details), normalize(self.server_error))


def normalize(text: str) -> str:
    """A message with its particulars (ids, numbers, quoted values) blanked, for grouping."""
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text)
    text = re.sub(r"[0-9a-f]{16,}", "<hex>", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "<value>", text)
    text = re.sub(r"\d+", "<n>", text)
    return cut(text, 200)


async def send(
    target: Target, rpc: Rpc, payload: bytes, sent: str
) -> tuple[grpc.StatusCode, Finding | None]:
    """Send `payload` as `rpc`'s request; the status, and what is wrong with the answer."""
    running = target.running
    target.errors.seen.clear()
    code, details = grpc.StatusCode.OK, ""
    try:
        await rpc.call_raw(
            running.channel, payload, rpc.metadata(running, target.world), timeout=CALL_TIMEOUT
        )
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
    # After every call, not only refused ones: a read that writes must not be blamed on
    # the refused call after it.
    after = await snapshot(running, target.process.metadata)
    changed = changed_tables(target.baseline, after) if code != grpc.StatusCode.OK else []
    target.baseline = after
    if code not in BAD_CODES and not changed:
        return code, None
    return code, Finding(
        rpc=rpc.name,
        store=target.store,
        problem="status" if code in BAD_CODES else "refusal changed the database",
        code=code.name,
        details=cut(details, 300),
        server_error=cut(" | ".join(dict.fromkeys(target.errors.seen)), 300),
        changed=", ".join(changed),
        sent=sent,
    )


async def real_page_token(target: Target, rpc: Rpc) -> str:
    """A next_page_token the listing returns in the world (page size 1), or ""."""
    fields = rpc.descriptor.input_type.fields_by_name
    if rpc.writes or "page_token" not in fields or "page_size" not in fields:
        return ""
    request: Any = rpc.request(target.world)
    request.page_size = 1
    try:
        reply = await rpc.call(
            target.running.channel, request, rpc.metadata(target.running, target.world)
        )
    except grpc.aio.AioRpcError:
        return ""
    return str(getattr(reply, "next_page_token", ""))


def mask_paths(descriptor: Descriptor) -> list[str]:
    """Names a field mask in this request could use: the fields of its message fields."""
    names: list[str] = []
    for each in descriptor.fields:
        if each.type == FieldDescriptor.TYPE_MESSAGE and message_of(each).full_name not in OPAQUE:
            names.extend(f.name for f in message_of(each).fields)
    return sorted(set(names))


def report(rpc: Rpc, target: Target, findings: list[Finding], examples: int) -> str:
    kinds: dict[tuple[str, ...], list[Finding]] = {}
    for finding in findings:
        kinds.setdefault(finding.kind, []).append(finding)
    lines = [
        f"{rpc.name} on {target.store}: {len(findings)} of {examples} calls went wrong, "
        f"{len(kinds)} kinds:"
    ]
    for group in kinds.values():
        first = group[0]
        lines.append(f"- {len(group)}x {first.problem}: {first.code} {first.details!r}")
        if first.server_error:
            lines.append(f"    server: {first.server_error}")
        if first.changed:
            lines.append(f"    changed: {first.changed}")
        lines.append(f"    sent: {first.sent}")
    return "\n".join(lines)


# --- Fixtures and the tests ------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each process's class runs its own catalogue, one test per RPC."""
    if "rpc" in metafunc.fixturenames and metafunc.cls is not None:
        catalogue = metafunc.cls.process.catalogue
        metafunc.parametrize("rpc", catalogue, ids=[rpc.name for rpc in catalogue])


@pytest.fixture(scope="class", params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="class")
async def target(
    store: str,
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Target]:
    """The class's process on a new database of the store, with its world: one per class and
    store, shared by the RPCs' tests."""
    process: Process = request.cls.process
    directory: Path = tmp_path_factory.mktemp(f"fuzz-{process.name}-{store}")
    errors = ServerErrors()
    logging.getLogger().addHandler(errors)
    try:
        with new_database(store, request, directory) as database_url:
            async with serve(
                process,
                database_url=database_url,
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=directory,
            ) as running:
                world = await process.prepare(running, None)
                yield Target(process, store, running, world, asyncio.get_running_loop(), errors)
    finally:
        logging.getLogger().removeHandler(errors)


class FuzzedProcess:
    """The fuzz test of one process's RPCs; a subclass per process names it."""

    process: ClassVar[Process]

    def test_the_snapshot_sees_what_a_call_writes(self, target: Target) -> None:
        """The check that refusals change nothing would pass vacuously if it did not."""
        writes = [rpc for rpc in target.process.catalogue if rpc.writes]
        if not writes:
            pytest.skip(f"{target.process.name} has no RPC that writes")
        run = target.loop.run_until_complete
        before = run(snapshot(target.running, target.process.metadata))
        first = writes[0]
        request = first.request(target.world)
        run(
            first.call(
                target.running.channel, request, first.metadata(target.running, target.world)
            )
        )
        assert changed_tables(before, run(snapshot(target.running, target.process.metadata)))

    def test_fuzzed_requests_are_answered_and_refusals_change_nothing(
        self, target: Target, rpc: Rpc
    ) -> None:
        fuzz(target, rpc)


class TestMembers(FuzzedProcess):
    process = rpcs_members.PROCESS


class TestContent(FuzzedProcess):
    process = rpcs_content.PROCESS


class TestEvents(FuzzedProcess):
    process = rpcs_events.PROCESS


class TestBilling(FuzzedProcess):
    process = rpcs_billing.PROCESS


class TestAnalytics(FuzzedProcess):
    process = rpcs_analytics.PROCESS


def fuzz(target: Target, rpc: Rpc) -> None:
    """`examples_for(rpc)` mutated or malformed requests of `rpc`, sent as its entry's caller."""
    run = target.loop.run_until_complete
    descriptor = rpc.descriptor.input_type
    context = Context(run(real_page_token(target, rpc)), mask_paths(descriptor))
    valid = rpc.request(target.world)
    mutated = mutations(rpc, valid, context)
    garbage = raw_garbage(descriptor)
    # About four in five examples mutate the valid request; the rest are raw bytes.
    shapes = st.sampled_from(["mutated", "mutated", "mutated", "mutated", "raw"])
    target.baseline = run(snapshot(target.running, target.process.metadata))
    findings: list[Finding] = []
    sent = 0
    answers: dict[str, int] = {}

    @seed(zlib.crc32(rpc.name.encode()))
    @settings(
        max_examples=examples_for(rpc),
        deadline=None,
        database=None,
        derandomize=True,
        # Findings are collected, never raised inside an example: nothing to shrink.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def exchange(data: st.DataObject) -> None:
        nonlocal sent
        request = rpc.request(target.world)  # a new request id every time
        if data.draw(shapes) == "mutated":
            changes = data.draw(mutated)
            for change in changes:
                change.apply(request)
            payload = request.SerializeToString()
            described = "; ".join(change.describe() for change in changes)
            quoted = cut(text_format.MessageToString(request, as_one_line=True), 400)
            sent_as = f"{described}  -- request: {quoted}"
        else:
            raw = data.draw(garbage)
            payload = raw.make(request.SerializeToString())
            sent_as = f"raw: {raw.label} ({len(payload)} bytes: {payload[:48]!r})"
        code, finding = run(send(target, rpc, payload, sent_as))
        sent += 1
        answers[code.name] = answers.get(code.name, 0) + 1
        if finding is not None:
            findings.append(finding)

    exchange()
    print(f"{rpc.name} on {target.store}: {sent} calls answered {answers}")
    if REPORT and findings:
        with open(REPORT, "a", encoding="utf-8") as out:
            for finding in findings:
                out.write(json.dumps(finding.__dict__) + "\n")
    assert not findings, report(rpc, target, findings, sent)
