"""The `studyhall` command: run the platform locally and operate it over gRPC."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import grpc
import nats
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.progress import Progress
from rich.table import Table

from services.cli.activities import activity_app
from services.cli.analytics import analytics_app, stats
from services.cli.billing import add_product_commands, billing_app, money_app
from services.cli.calendar import calendar_app
from services.cli.care import care_app
from services.cli.common import (
    AsJson,
    AsUser,
    RequestId,
    call,
    enum_option,
    err,
    metadata,
    out,
    show,
    stub,
)
from services.cli.content import content_app
from services.cli.endpoints import SERVICES, CliError, Endpoints, data_dir
from services.cli.library import library_app
from services.cli.members import community_app, member_app
from services.cli.paths import path_app
from services.cli.profiles import personas_app
from services.cli.recognition import recognition_app
from services.cli.review import review_app
from services.cli.subscriptions import coupon_app, subscription_app
from services.kit.events import deadletter
from services.kit.events.connection import servers
from services.kit.settings import ServiceSettings
from services.kit.telemetry import VERSION
from studyhall.billing.v1 import billing_service_pb2 as billing_pb
from studyhall.billing.v1 import billing_service_pb2_grpc as billing_grpc

app = typer.Typer(
    help="Studyhall: run the platform locally and operate it.\n\n"
    "Exit codes: 0 done; 1 refused or failed (the service's answer, or what went wrong, is "
    "printed on stderr); 2 a usage error (an unknown command or option, a missing "
    "argument).",
    no_args_is_help=True,
)


def _version(asked: bool) -> None:
    if asked:
        typer.echo(f"studyhall {VERSION}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Studyhall: run the platform locally and operate it."""


product_app = typer.Typer(help="Products of a community.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Dead letters: events a consumer could not handle.", no_args_is_help=True
)
app.add_typer(community_app, name="community")
app.add_typer(member_app, name="member")
app.add_typer(activity_app, name="activity")
app.add_typer(product_app, name="product")
app.add_typer(billing_app, name="billing")
app.add_typer(money_app)
app.add_typer(subscription_app, name="subscription")
app.add_typer(coupon_app, name="coupon")
add_product_commands(product_app)
app.add_typer(dlq_app, name="dlq")
app.add_typer(recognition_app)
app.add_typer(content_app)
app.add_typer(review_app, name="review")
app.add_typer(calendar_app, name="calendar")
app.add_typer(path_app, name="path")
app.add_typer(library_app, name="library")
app.add_typer(personas_app)
app.add_typer(care_app, name="care")
app.add_typer(analytics_app, name="analytics")
app.command()(stats)


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
                f"[red]{dead} keeps exiting right after it starts[/red]; "
                f"see {platform.data_dir}/logs/{dead}.log"
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
def health(as_json: AsJson = False) -> None:
    """Readiness of every service."""
    endpoints = Endpoints.discover()
    found = []
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
        found.append({"service": name, "address": endpoints.grpc[name], "status": status})
    if as_json:
        out.print_json(json.dumps(found))
    else:
        out.print(table)
    if not healthy:
        raise typer.Exit(1)


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
    as_json: AsJson = False,
) -> None:
    """Add a product to a community's catalogue; prints its id."""
    request = billing_pb.CreateProductRequest(
        request_id=request_id or str(uuid.uuid4()),
        community_id=community_id,
        kind=enum_option(billing_pb.ProductKind, "PRODUCT_KIND_", kind),  # type: ignore[arg-type]
        name=name,
        description=description,
        price=billing_pb.Money(currency=currency, amount_minor=price_minor),
        billing_period=enum_option(billing_pb.BillingPeriod, "BILLING_PERIOD_", period.value),  # type: ignore[arg-type]
        trial_days=trial_days,
    )
    with stub("billing", billing_grpc.BillingServiceStub) as client:
        reply = call(client.CreateProduct, request, metadata(as_user))
    if as_json:
        show(reply, True, "product")
        return
    typer.echo(reply.product.id)


@product_app.command("show")
def product_show(
    community_id: str, product_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Show a product."""
    with stub("billing", billing_grpc.BillingServiceStub) as client:
        reply = call(
            client.GetProduct,
            billing_pb.GetProductRequest(community_id=community_id, product_id=product_id),
            metadata(as_user),
        )
    show(reply.product, as_json, "product")


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
    as_json: AsJson = False,
) -> None:
    """Republish dead letters to their original subjects (each applied at most once)."""
    if not sequences and not all_letters:
        raise typer.BadParameter("give sequences from `studyhall dlq list`, or --all")

    async def replay_them(js: Any) -> list[dict[str, Any]]:
        chosen = list(sequences or [])
        if all_letters:
            letters = await deadletter.list_dead_letters(js)
            chosen = [x.sequence for x in letters if not consumer or x.consumer == consumer]
        done = []
        # On a terminal, a bar on stderr: a replay of thousands takes a while.
        with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
            bar = progress.add_task("replaying", total=len(chosen))
            for sequence in chosen:
                progress.advance(bar)
                try:
                    letter = await deadletter.replay(js, sequence)
                except LookupError as error:
                    err.print(f"[yellow]skipped:[/yellow] {error}")
                    continue
                done.append(
                    {"sequence": sequence, "event_type": letter.event_type, "id": letter.event_id}
                )
        return done

    replayed = asyncio.run(_with_jetstream(replay_them))
    if as_json:
        out.print_json(json.dumps(replayed))
        return
    for done in replayed:
        typer.echo(f"replayed {done['sequence']}: {done['event_type']} {done['id']}")


T = TypeVar("T")


async def _with_jetstream(action: Callable[[Any], Awaitable[T]]) -> T:
    url = Endpoints.discover().nats_url
    try:
        client = await nats.connect(
            servers=servers(url),
            # The same STUDYHALL_NATS_* user and TLS settings as the services'.
            **ServiceSettings().nats_auth().options(),
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
