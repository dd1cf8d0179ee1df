"""What every `studyhall` command group shares: options, calls and printing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console
from rich.table import Table

from services.cli.endpoints import Endpoints

out = Console()
err = Console(stderr=True)

AsUser = Annotated[
    str | None,
    typer.Option("--as", help="Act as this user (local platform: signs with the local key)."),
]
Operator = Annotated[
    bool, typer.Option("--operator", help="Sign as a platform operator (local only).")
]
RequestId = Annotated[
    str,
    typer.Option("--request-id", help="Idempotency key: a retry with it returns the first result."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the full record as JSON.")]
TIMEOUT_SECONDS = 10.0

StubT = TypeVar("StubT")
PagedT = TypeVar("PagedT", bound=Message)


@contextmanager
def stub(service: str, factory: Callable[[grpc.Channel], StubT]) -> Iterator[StubT]:
    endpoints = Endpoints.discover()
    with grpc.insecure_channel(endpoints.grpc[service]) as channel:
        yield factory(channel)


def metadata(user: str | None, operator: bool = False) -> list[tuple[str, str]]:
    return [("authorization", "Bearer " + Endpoints.discover().token(user, operator=operator))]


def call(method: Callable[..., Any], request: Message, metadata: list[tuple[str, str]]) -> Any:
    try:
        return method(request, metadata=metadata, timeout=TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        fail_rpc(error)


def fail_rpc(error: grpc.RpcError) -> None:
    code = error.code()
    err.print(f"[red]error:[/red] {code.name}: {error.details()}")
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                line = f"{violation.field}: {violation.description}"
                if line not in (error.details() or ""):
                    err.print(f"  {line}")
    raise typer.Exit(1)


def every_page(fetch: Callable[[str], PagedT]) -> PagedT:
    """Every page of a list as one reply (its repeated fields run on page after page): a
    list command shows everything, not only the first page."""
    reply = fetch("")
    token = getattr(reply, "next_page_token")  # noqa: B009 - every list reply has one
    while token:
        page = fetch(token)
        reply.MergeFrom(page)
        token = getattr(page, "next_page_token")  # noqa: B009
    reply.next_page_token = ""  # type: ignore[attr-defined]
    return reply


def show(record: Message, as_json: bool, title: str) -> None:
    # Zeros are answers too (a quiet community has 0 members), so they are shown.
    fields = MessageToDict(
        record, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    if as_json:
        out.print_json(json.dumps(fields))
        return
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in fields.items():
        table.add_row(name, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    out.print(table)


def enum_option(enum_type: Any, prefix: str, value: str) -> int:
    name = prefix + value.upper().replace("-", "_")
    try:
        return int(enum_type.Value(name))
    except ValueError:
        choices = [n.removeprefix(prefix).lower().replace("_", "-") for n in enum_type.keys()[1:]]
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}") from None


def timestamp(value: str, option: str) -> Timestamp:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{option}: expected an ISO 8601 time, e.g. 2026-12-01T18:00:00+00:00"
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{option}: give a time zone offset, e.g. +00:00")
    stamp = Timestamp()
    stamp.FromDatetime(parsed)
    return stamp
