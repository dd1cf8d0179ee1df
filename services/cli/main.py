"""The `studyhall` command: run the platform locally and operate it over gRPC."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import grpc
import nats
import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from rich.console import Console
from rich.table import Table

from services.cli.endpoints import SERVICES, CliError, Endpoints, data_dir
from services.kit.events import deadletter
from studyhall.analytics.v1 import analytics_service_pb2 as analytics_pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as analytics_grpc
from studyhall.billing.v1 import billing_service_pb2 as billing_pb
from studyhall.billing.v1 import billing_service_pb2_grpc as billing_grpc
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.content.v1 import content_service_pb2_grpc as content_grpc
from studyhall.events.v1 import activities_service_pb2 as events_pb
from studyhall.events.v1 import activities_service_pb2_grpc as events_grpc
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc

app = typer.Typer(help="Studyhall: run the platform locally and operate it.", no_args_is_help=True)
community_app = typer.Typer(help="Communities.", no_args_is_help=True)
post_app = typer.Typer(help="Posts of a community.", no_args_is_help=True)
activity_app = typer.Typer(help="Activities of a community.", no_args_is_help=True)
product_app = typer.Typer(help="Products of a community.", no_args_is_help=True)
app.add_typer(community_app, name="community")
app.add_typer(post_app, name="post")
app.add_typer(activity_app, name="activity")
member_app = typer.Typer(help="Membership of communities.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Dead letters: events a consumer could not handle.", no_args_is_help=True
)
app.add_typer(product_app, name="product")
app.add_typer(member_app, name="member")
app.add_typer(dlq_app, name="dlq")

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


@contextmanager
def _stub(service: str, factory: Callable[[grpc.Channel], StubT]) -> Iterator[StubT]:
    endpoints = Endpoints.discover()
    with grpc.insecure_channel(endpoints.grpc[service]) as channel:
        yield factory(channel)


def _metadata(user: str | None, operator: bool = False) -> list[tuple[str, str]]:
    return [("authorization", "Bearer " + Endpoints.discover().token(user, operator=operator))]


def _call(method: Callable[..., Any], request: Message, metadata: list[tuple[str, str]]) -> Any:
    try:
        return method(request, metadata=metadata, timeout=TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        _fail_rpc(error)


def _fail_rpc(error: grpc.RpcError) -> None:
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


def _show(record: Message, as_json: bool, title: str) -> None:
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


def _enum_option(enum_type: Any, prefix: str, value: str) -> int:
    name = prefix + value.upper().replace("-", "_")
    try:
        return int(enum_type.Value(name))
    except ValueError:
        choices = [n.removeprefix(prefix).lower().replace("_", "-") for n in enum_type.keys()[1:]]
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}") from None


def _timestamp(value: str, option: str) -> Timestamp:
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


@app.command()
def up() -> None:
    """Run the five services with embedded NATS and Redis on SQLite under STUDYHALL_DATA_DIR."""
    from services.cli.runner import Platform

    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    platform = Platform(data_dir(), say=lambda text: err.print(text))
    try:
        platform.start()
        table = Table(title=f"Studyhall is up (data in {platform.data_dir}/)")
        for column in ("what", "address", "metrics"):
            table.add_column(column)
        for name in SERVICES:
            table.add_row(name, platform.grpc[name], f"http://{platform.metrics[name]}/metrics")
        table.add_row("nats", platform.nats_url, "")
        table.add_row("redis", platform.redis_url, "")
        out.print(table)
        out.print(f"endpoints: {platform.data_dir / 'endpoints.json'}")
        out.print(f"logs: {platform.data_dir / 'logs'}/")
        out.print("Ctrl-C stops everything.")
        dead = platform.watch(lambda: stopping)
        if dead:
            err.print(
                f"[red]{dead} exited unexpectedly[/red]; see {platform.data_dir}/logs/{dead}.log"
            )
    except CliError as error:
        err.print(f"[red]error:[/red] {error}")
        platform.stop()
        raise typer.Exit(1) from None
    err.print("stopping...")
    platform.stop()
    err.print("stopped")
    if dead:
        raise typer.Exit(1)


@app.command()
def health() -> None:
    """Readiness of every service."""
    endpoints = Endpoints.discover()
    table = Table(title="health")
    for column in ("service", "address", "status"):
        table.add_column(column)
    healthy = True
    for name in SERVICES:
        with grpc.insecure_channel(endpoints.grpc[name]) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=3
                )
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as error:
                status = error.code().name
        healthy = healthy and status == "SERVING"
        table.add_row(name, endpoints.grpc[name], status)
    out.print(table)
    if not healthy:
        raise typer.Exit(1)


@community_app.command("create")
def community_create(
    name: Annotated[str, typer.Option(help="Display name.")],
    topic: Annotated[str, typer.Option(help="What the community studies, e.g. english.")],
    slug: Annotated[str, typer.Option(help="URL handle; derived from the name when empty.")] = "",
    mission: str = "",
    audience: str = "",
    tag: Annotated[list[str] | None, typer.Option(help="Repeat for several tags.")] = None,
    visibility: Annotated[str, typer.Option(help="public, unlisted or private.")] = "public",
    join_policy: Annotated[str, typer.Option(help="open, approval or invite-only.")] = "open",
    question: Annotated[
        list[str] | None, typer.Option(help="A join question for applicants; repeat.")
    ] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
    operator: Operator = False,
) -> None:
    """Create a community; prints its id. The caller becomes its owner."""
    request = members_pb.CreateCommunityRequest(
        request_id=request_id or str(uuid.uuid4()),
        name=name,
        slug=slug,
        topic=topic,
        mission=mission,
        audience=audience,
        tags=tag or [],
        visibility=_enum_option(members_pb.Visibility, "VISIBILITY_", visibility),  # type: ignore[arg-type]
        join_policy=_enum_option(members_pb.JoinPolicy, "JOIN_POLICY_", join_policy),  # type: ignore[arg-type]
        join_questions=question or [],
    )
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        reply = _call(stub.CreateCommunity, request, _metadata(as_user, operator))
    typer.echo(reply.community.id)


@community_app.command("show")
def community_show(
    community_id: str, as_user: AsUser = None, operator: Operator = False, as_json: AsJson = False
) -> None:
    """Show a community."""
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        reply = _call(
            stub.GetCommunity,
            members_pb.GetCommunityRequest(community_id=community_id),
            _metadata(as_user, operator),
        )
    _show(reply.community, as_json, "community")


@post_app.command("create")
def post_create(
    community_id: str,
    title: Annotated[str, typer.Option()],
    kind: Annotated[
        str, typer.Option(help="article, video, audio, link, resource or question.")
    ] = "article",
    body: str = "",
    url: str = "",
    tag: Annotated[list[str] | None, typer.Option(help="Repeat for several tags.")] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Publish a post in a community; prints its id."""
    request = content_pb.CreatePostRequest(
        request_id=request_id or str(uuid.uuid4()),
        community_id=community_id,
        kind=_enum_option(content_pb.PostKind, "POST_KIND_", kind),  # type: ignore[arg-type]
        title=title,
        body=body,
        url=url,
        tags=tag or [],
    )
    with _stub("content", content_grpc.ContentServiceStub) as stub:
        reply = _call(stub.CreatePost, request, _metadata(as_user))
    typer.echo(reply.post.id)


@post_app.command("show")
def post_show(
    community_id: str, post_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Show a post."""
    with _stub("content", content_grpc.ContentServiceStub) as stub:
        reply = _call(
            stub.GetPost,
            content_pb.GetPostRequest(community_id=community_id, post_id=post_id),
            _metadata(as_user),
        )
    _show(reply.post, as_json, "post")


@activity_app.command("create")
def activity_create(
    community_id: str,
    title: Annotated[str, typer.Option()],
    start: Annotated[
        str, typer.Option(help="ISO 8601 with offset, e.g. 2026-12-01T18:00:00+08:00.")
    ],
    kind: Annotated[
        str, typer.Option(help="online-lecture, offline-meetup, expert-ama or challenge.")
    ] = "online-lecture",
    end: Annotated[str, typer.Option(help="ISO 8601 with offset; optional.")] = "",
    description: str = "",
    capacity: Annotated[int, typer.Option(help="0 means unlimited.")] = 0,
    location: Annotated[str, typer.Option(help="Where an offline meetup happens.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Schedule an activity in a community; prints its id."""
    request = events_pb.CreateActivityRequest(
        request_id=request_id or str(uuid.uuid4()),
        community_id=community_id,
        kind=_enum_option(events_pb.ActivityKind, "ACTIVITY_KIND_", kind),  # type: ignore[arg-type]
        title=title,
        description=description,
        start_time=_timestamp(start, "--start"),
        capacity=capacity,
        location=location,
    )
    if end:
        request.end_time.CopyFrom(_timestamp(end, "--end"))
    with _stub("events", events_grpc.ActivitiesServiceStub) as stub:
        reply = _call(stub.CreateActivity, request, _metadata(as_user))
    typer.echo(reply.activity.id)


@activity_app.command("show")
def activity_show(
    community_id: str, activity_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Show an activity."""
    with _stub("events", events_grpc.ActivitiesServiceStub) as stub:
        reply = _call(
            stub.GetActivity,
            events_pb.GetActivityRequest(community_id=community_id, activity_id=activity_id),
            _metadata(as_user),
        )
    _show(reply.activity, as_json, "activity")


class Period(StrEnum):
    one_off = "one-off"
    monthly = "monthly"
    yearly = "yearly"


@product_app.command("create")
def product_create(
    community_id: str,
    name: Annotated[str, typer.Option()],
    price_minor: Annotated[int, typer.Option(help="Price in minor units: 999 is 9.99 USD.")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code, e.g. USD.")],
    kind: Annotated[
        str, typer.Option(help="membership-plan, paid-course, event-ticket or sponsorship.")
    ] = "membership-plan",
    period: Annotated[Period, typer.Option(help="Billing period.")] = Period.one_off,
    trial_days: int = 0,
    description: str = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Add a product to a community's catalogue; prints its id."""
    request = billing_pb.CreateProductRequest(
        request_id=request_id or str(uuid.uuid4()),
        community_id=community_id,
        kind=_enum_option(billing_pb.ProductKind, "PRODUCT_KIND_", kind),  # type: ignore[arg-type]
        name=name,
        description=description,
        price=billing_pb.Money(currency=currency, amount_minor=price_minor),
        billing_period=_enum_option(billing_pb.BillingPeriod, "BILLING_PERIOD_", period.value),  # type: ignore[arg-type]
        trial_days=trial_days,
    )
    with _stub("billing", billing_grpc.BillingServiceStub) as stub:
        reply = _call(stub.CreateProduct, request, _metadata(as_user))
    typer.echo(reply.product.id)


@product_app.command("show")
def product_show(
    community_id: str, product_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Show a product."""
    with _stub("billing", billing_grpc.BillingServiceStub) as stub:
        reply = _call(
            stub.GetProduct,
            billing_pb.GetProductRequest(community_id=community_id, product_id=product_id),
            _metadata(as_user),
        )
    _show(reply.product, as_json, "product")


@app.command()
def stats(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """Figures of a community, from analytics."""
    with _stub("analytics", analytics_grpc.AnalyticsServiceStub) as stub:
        reply = _call(
            stub.GetCommunityStats,
            analytics_pb.GetCommunityStatsRequest(community_id=community_id),
            _metadata(as_user),
        )
    _show(reply.stats, as_json, "community stats")


@member_app.command("join")
def member_join(
    community_id: str,
    answer: Annotated[
        list[str] | None, typer.Option(help="Answer to a join question; repeat, in order.")
    ] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Join an open community, or ask to join one that reviews applicants."""
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        reply = _call(
            stub.JoinCommunity,
            members_pb.JoinCommunityRequest(
                community_id=community_id,
                answers=answer or [],
                request_id=request_id or str(uuid.uuid4()),
            ),
            _metadata(as_user),
        )
    if reply.HasField("join_request"):
        typer.echo("asked to join; a moderator will review your request")
        return
    _show(reply.membership, False, "membership")


@member_app.command("requests")
def member_requests(community_id: str, as_user: AsUser = None, as_json: AsJson = False) -> None:
    """Pending join requests of a community (moderators)."""
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        reply = _call(
            stub.ListJoinRequests,
            members_pb.ListJoinRequestsRequest(community_id=community_id, page_size=100),
            _metadata(as_user),
        )
    if as_json:
        rows = [MessageToDict(r, preserving_proto_field_name=True) for r in reply.join_requests]
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"join requests ({len(reply.join_requests)})")
    for column in ("user", "asked at", "answers"):
        table.add_column(column)
    for request in reply.join_requests:
        table.add_row(
            request.user_id, request.create_time.ToJsonString()[:19], " | ".join(request.answers)
        )
    out.print(table)


@member_app.command("review")
def member_review(
    community_id: str,
    user_id: str,
    approve: Annotated[bool, typer.Option("--approve/--reject", help="Let them in or not.")],
    reason: Annotated[str, typer.Option(help="Required to reject; the applicant sees it.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Approve or reject a join request (moderators)."""
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        reply = _call(
            stub.ReviewJoinRequest,
            members_pb.ReviewJoinRequestRequest(
                community_id=community_id,
                user_id=user_id,
                approve=approve,
                reason=reason,
                request_id=request_id or str(uuid.uuid4()),
            ),
            _metadata(as_user),
        )
    typer.echo(
        members_pb.JoinRequestState.Name(reply.join_request.state)
        .removeprefix("JOIN_REQUEST_STATE_")
        .lower()
    )


@member_app.command("role")
def member_role(
    community_id: str,
    user_id: str,
    role: Annotated[str, typer.Argument(help="member, moderator or admin.")],
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Give a member another role (admins; only the owner makes admins)."""
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        reply = _call(
            stub.ChangeRole,
            members_pb.ChangeRoleRequest(
                community_id=community_id,
                user_id=user_id,
                role=_enum_option(members_pb.Role, "ROLE_", role),  # type: ignore[arg-type]
                request_id=request_id or str(uuid.uuid4()),
            ),
            _metadata(as_user),
        )
    _show(reply.membership, False, "membership")


@member_app.command("moderate")
def member_moderate(
    community_id: str,
    user_id: str,
    action: Annotated[str, typer.Argument(help="remove, ban, unban, mute or unmute.")],
    reason: Annotated[str, typer.Option(help="Required for remove, ban and mute.")] = "",
    until: Annotated[str, typer.Option(help="Ban or mute end, ISO 8601 with offset.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
) -> None:
    """Remove, ban, unban, mute or unmute a member (moderators)."""
    request = members_pb.ModerateMemberRequest(
        community_id=community_id,
        user_id=user_id,
        action=_enum_option(members_pb.ModerationAction, "MODERATION_ACTION_", action),  # type: ignore[arg-type]
        reason=reason,
        request_id=request_id or str(uuid.uuid4()),
    )
    if until:
        request.until.CopyFrom(_timestamp(until, "--until"))
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        reply = _call(stub.ModerateMember, request, _metadata(as_user))
    _show(reply.membership, False, "membership")


@member_app.command("audit")
def member_audit(community_id: str, as_user: AsUser = None) -> None:
    """The moderator and admin actions in a community, newest first (admins)."""
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        reply = _call(
            stub.ListAuditLog,
            members_pb.ListAuditLogRequest(community_id=community_id, page_size=100),
            _metadata(as_user),
        )
    table = Table(title="audit log")
    for column in ("when", "who", "action", "whom", "note"):
        table.add_column(column)
    for entry in reply.entries:
        table.add_row(
            entry.create_time.ToJsonString()[:19],
            entry.actor_user_id,
            entry.action,
            entry.target_user_id,
            entry.note,
        )
    out.print(table)


@member_app.command("leave")
def member_leave(community_id: str, request_id: RequestId = "", as_user: AsUser = None) -> None:
    """Leave a community."""
    with _stub("members", members_grpc.MembersServiceStub) as stub:
        _call(
            stub.LeaveCommunity,
            members_pb.LeaveCommunityRequest(
                community_id=community_id, request_id=request_id or str(uuid.uuid4())
            ),
            _metadata(as_user),
        )
    typer.echo(f"left {community_id}")


@dlq_app.command("list")
def dlq_list(
    consumer: Annotated[str, typer.Option(help="Only this consumer's letters.")] = "",
    as_json: AsJson = False,
) -> None:
    """Dead letters with their reasons, oldest first."""
    letters = asyncio.run(_with_jetstream(lambda js: deadletter.list_dead_letters(js)))
    letters = [letter for letter in letters if not consumer or letter.consumer == consumer]
    if as_json:
        rows = [
            {
                "sequence": letter.sequence,
                "consumer": letter.consumer,
                "event_type": letter.event_type,
                "event_id": letter.event_id,
                "community_id": letter.community_id,
                "subject": letter.subject,
                "parked_at": letter.parked_at,
                "reason": letter.reason,
            }
            for letter in letters
        ]
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"dead letters ({len(letters)})")
    for column in ("seq", "consumer", "type", "event id", "parked at", "reason"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            str(letter.sequence),
            letter.consumer,
            letter.event_type.rsplit(".", 1)[-1],
            letter.event_id,
            letter.parked_at[:19],
            letter.reason,
        )
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(
    sequences: Annotated[
        list[int] | None, typer.Argument(help="Sequences from `dlq list`.")
    ] = None,
    all_letters: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
    consumer: Annotated[str, typer.Option(help="With --all: only this consumer's.")] = "",
) -> None:
    """Republish dead letters to their original subjects (each applied at most once)."""
    if not sequences and not all_letters:
        raise typer.BadParameter("give sequences from `studyhall dlq list`, or --all")

    async def replay_them(js: Any) -> list[str]:
        chosen = list(sequences or [])
        if all_letters:
            letters = await deadletter.list_dead_letters(js)
            chosen = [x.sequence for x in letters if not consumer or x.consumer == consumer]
        done = []
        for sequence in chosen:
            try:
                letter = await deadletter.replay(js, sequence)
            except LookupError as error:
                err.print(f"[yellow]skipped:[/yellow] {error}")
                continue
            done.append(f"replayed {sequence}: {letter.event_type} {letter.event_id}")
        return done

    for line in asyncio.run(_with_jetstream(replay_them)):
        typer.echo(line)


T = TypeVar("T")


async def _with_jetstream(action: Callable[[Any], Awaitable[T]]) -> T:
    url = Endpoints.discover().nats_url
    try:
        client = await nats.connect(
            servers=url.split(","),
            connect_timeout=3,
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )
    except Exception as error:
        raise CliError(f"cannot reach NATS at {url}: {error}; set STUDYHALL_NATS_URL") from None
    try:
        return await action(client.jetstream())
    finally:
        await client.close()


def run() -> None:
    try:
        app()
    except CliError as error:
        err.print(f"[red]error:[/red] {error}")
        sys.exit(1)
