"""The platform as an operator meets it: `studyhall up` starts five service processes on
the harness's NATS and Redis; they are driven only through their public gRPC APIs and the
CLI, and stop cleanly on SIGTERM with their data kept for the next run."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider

from services.kit.auth import LocalSigner
from services.kit.events.connection import servers
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
from tests.support.otlp import Receiver, otlp_receiver
from tests.support.processes import inherited_environment
from tests.support.services import free_port
from tests.unit.test_deploy_config import NATS_EXPORTER_METRICS, metric_names, promql_expressions

pytestmark = pytest.mark.system

SERVICES = ("members", "content", "events", "billing", "analytics")
CLI = str(Path(sys.executable).parent / "studyhall")


@dataclass
class Platform:
    process: subprocess.Popen[str]
    data_dir: Path
    env: dict[str, str]
    endpoints: dict[str, str]

    def channel(self, service: str) -> grpc.Channel:
        return grpc.insecure_channel(self.endpoints[service])

    def auth(self, user_id: str) -> list[tuple[str, str]]:
        token = LocalSigner.ensure(self.data_dir).mint(user_id)
        return [("authorization", f"Bearer {token}")]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )


def _environment(data_dir: Path, nats_url: str, redis_url: str) -> dict[str, str]:
    env = inherited_environment()
    env.update(
        STUDYHALL_DATA_DIR=str(data_dir),
        STUDYHALL_NATS_URL=nats_url,
        STUDYHALL_REDIS_URL=redis_url,
        COLUMNS="200",
    )
    for service in SERVICES:
        env[f"STUDYHALL_{service.upper()}_GRPC_PORT"] = str(free_port())
        env[f"STUDYHALL_{service.upper()}_METRICS_PORT"] = str(free_port())
    # The sandbox payment provider and billing's webhook endpoint.
    env["STUDYHALL_SANDBOX_PORT"] = str(free_port())
    env["STUDYHALL_BILLING_WEBHOOK_PORT"] = str(free_port())
    return env


def _start(env: dict[str, str], data_dir: Path) -> Platform:
    process = subprocess.Popen(
        [CLI, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    manifest = data_dir / "endpoints.json"
    deadline = time.monotonic() + 120
    while not manifest.exists():
        if process.poll() is not None:
            raise AssertionError(
                f"studyhall up exited: {process.stdout.read() if process.stdout else ''}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("studyhall up did not write endpoints.json in 120s")
        time.sleep(0.2)
    recorded = json.loads(manifest.read_text())
    endpoints = {name: recorded["services"][name]["grpc"] for name in SERVICES}
    return Platform(process, data_dir, env, endpoints)


def _stop(platform: Platform) -> str:
    platform.process.send_signal(signal.SIGTERM)
    output, _ = platform.process.communicate(timeout=60)
    assert platform.process.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def collector() -> Iterator[Receiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, redis_url: str, collector: Receiver
) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("platform") / "data"
    env = _environment(data_dir, nats_url, redis_url)
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_METRIC_EXPORT_INTERVAL="1000",
    )
    running = _start(env, data_dir)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            _stop(running)


def test_every_service_is_serving_and_lists_its_api_through_reflection(platform: Platform) -> None:
    for service in SERVICES:
        with platform.channel(service) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING, service
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            replies = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            names = {s.name for reply in replies for s in reply.list_services_response.service}
            assert any(name.startswith(f"studyhall.{service}.v1.") for name in names), names


def _once_roles_arrive(call: Callable[[], Any]) -> Any:
    """Other services learn roles from members' events: a brand-new community is NOT_FOUND
    there for the moment its events take to arrive."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_first_capability_of_each_service_works_with_a_token_and_not_without(
    platform: Platform,
) -> None:
    owner = platform.auth("olivia")
    with platform.channel("members") as channel:
        members = members_grpc.MembersServiceStub(channel)
        request = members_pb.CreateCommunityRequest(
            name=f"Readers {uuid.uuid4().hex[:6]}", topic="reading"
        )
        with pytest.raises(grpc.RpcError) as refused:
            members.CreateCommunity(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        community = members.CreateCommunity(request, metadata=owner, timeout=10).community
        assert (
            members.GetCommunity(
                members_pb.GetCommunityRequest(community_id=community.id),
                metadata=owner,
                timeout=10,
            ).community
            == community
        )

    start = Timestamp()
    start.FromSeconds(int(time.time()) + 86400)
    calls: list[tuple[str, Any, str, Message, str, Callable[[Any], Message]]] = [
        (
            "content",
            content_grpc.ContentServiceStub,
            "CreatePost",
            content_pb.CreatePostRequest(
                community_id=community.id,
                kind=content_pb.POST_KIND_ARTICLE,
                title="Week 1",
                body="Read ch. 1",
            ),
            "GetPost",
            lambda created: content_pb.GetPostRequest(
                community_id=community.id, post_id=created.post.id
            ),
        ),
        (
            "events",
            events_grpc.ActivitiesServiceStub,
            "CreateActivity",
            events_pb.CreateActivityRequest(
                community_id=community.id,
                kind=events_pb.ACTIVITY_KIND_ONLINE_LECTURE,
                title="Close reading",
                start_time=start,
            ),
            "GetActivity",
            lambda created: events_pb.GetActivityRequest(
                community_id=community.id, activity_id=created.activity.id
            ),
        ),
        (
            "billing",
            billing_grpc.BillingServiceStub,
            "CreateProduct",
            billing_pb.CreateProductRequest(
                community_id=community.id,
                kind=billing_pb.PRODUCT_KIND_MEMBERSHIP_PLAN,
                name="Monthly",
                price=billing_pb.Money(currency="USD", amount_minor=999),
                billing_period=billing_pb.BILLING_PERIOD_MONTHLY,
            ),
            "GetProduct",
            lambda created: billing_pb.GetProductRequest(
                community_id=community.id, product_id=created.product.id
            ),
        ),
    ]
    for service, stub_type, create, create_request, get, get_request in calls:
        with platform.channel(service) as channel:
            stub = stub_type(channel)
            with pytest.raises(grpc.RpcError) as refused:
                getattr(stub, create)(create_request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, service
            created = _once_roles_arrive(
                functools.partial(getattr(stub, create), create_request, metadata=owner, timeout=10)
            )
            fetched = getattr(stub, get)(get_request(created), metadata=owner, timeout=10)
            # Each reply holds one record: what Get returns is what Create made.
            assert fetched.ListFields()[0][1] == created.ListFields()[0][1], service

    with platform.channel("analytics") as channel:
        analytics = analytics_grpc.AnalyticsServiceStub(channel)
        stats_request = analytics_pb.GetCommunityStatsRequest(community_id=community.id)
        with pytest.raises(grpc.RpcError) as refused:
            analytics.GetCommunityStats(stats_request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stats = _once_roles_arrive(
            lambda: analytics.GetCommunityStats(stats_request, metadata=owner, timeout=10)
        ).stats
        assert stats.community_id == community.id


def test_cli_creates_a_community_and_shows_it(platform: Platform) -> None:
    created = platform.cli(
        "community",
        "create",
        "--name",
        "Exam Sprint",
        "--topic",
        "exams",
        "--tag",
        "gaokao",
        "--as",
        "kai",
    )
    assert created.returncode == 0, created.stderr
    community_id = created.stdout.strip().splitlines()[-1]
    uuid.UUID(community_id)
    shown = platform.cli("community", "show", community_id, "--as", "kai", "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["id"] == community_id
    assert record["owner_user_id"] == "kai"
    assert record["tags"] == ["gaokao"]
    health = platform.cli("health")
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.count("SERVING") == 5


def test_members_joining_reach_the_stats_through_the_backbone(platform: Platform) -> None:
    created = platform.cli(
        "community", "create", "--name", "Chess Club", "--topic", "chess", "--as", "mo"
    )
    community_id = created.stdout.strip()
    for user in ("pat", "quinn"):
        joined = platform.cli("member", "join", community_id, "--as", user)
        assert joined.returncode == 0, joined.stderr
    left = platform.cli("member", "leave", community_id, "--as", "pat")
    assert left.returncode == 0, left.stderr
    for _ in range(100):
        stats = platform.cli("stats", community_id, "--as", "mo", "--json")
        if stats.returncode == 0 and json.loads(stats.stdout)["member_count"] == "2":
            break
        assert stats.returncode == 0 or "NOT_FOUND" in stats.stderr, stats.stderr
        time.sleep(0.2)
    assert json.loads(stats.stdout)["member_count"] == "2"


def test_poison_event_is_listed_and_replayable_with_the_cli(
    platform: Platform, nats_url: str
) -> None:
    community_id = str(uuid.uuid4())

    async def publish_poison() -> None:
        client = await nats.connect(servers(nats_url))
        try:
            await client.jetstream().publish(
                f"studyhall.members.{community_id}.MemberJoined", b"not an event"
            )
        finally:
            await client.close()

    asyncio.run(publish_poison())
    mine: list[dict[str, Any]] = []
    for _ in range(100):
        listed = platform.cli("dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        mine = [x for x in json.loads(listed.stdout) if community_id in x["subject"]]
        if len(mine) == 6:
            break
        time.sleep(0.2)
    # Every consumer of MemberJoined parks its own copy: analytics' count, the four role
    # projections and members' own activity tracking for points.
    assert {x["consumer"] for x in mine} == {
        "analytics-members",
        "analytics-access",
        "content-access",
        "events-access",
        "billing-access",
        "members-recognition-members",
    }
    [letter] = [x for x in mine if x["consumer"] == "analytics-members"]
    assert letter["reason"] == "no CloudEvents headers"
    replayed = platform.cli("dlq", "replay", str(letter["sequence"]))
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {letter['sequence']}" in replayed.stdout
    listed = platform.cli("dlq", "list", "--json")
    assert letter["sequence"] not in [x["sequence"] for x in json.loads(listed.stdout)]


def test_backbone_metrics_are_on_the_prometheus_endpoints(platform: Platform) -> None:
    recorded = json.loads((platform.data_dir / "endpoints.json").read_text())["services"]

    def scrape(service: str) -> str:
        with urllib.request.urlopen(recorded[service]["metrics"], timeout=5) as response:
            return str(response.read().decode())

    created = platform.cli(
        "community", "create", "--name", "Metrics", "--topic", "ops", "--as", "m"
    )
    assert created.returncode == 0, created.stderr
    for _ in range(100):
        members, analytics = scrape("members"), scrape("analytics")
        if "studyhall_consumer_processed" in analytics and "studyhall_outbox_published" in members:
            break
        time.sleep(0.2)
    for name in (
        "studyhall_outbox_backlog",
        "studyhall_outbox_oldest_age",
        "studyhall_outbox_published",
    ):
        assert name in members, name
    for name in ("studyhall_consumer_processed", "studyhall_consumer_lag"):
        assert name in analytics, name
    assert 'consumer="analytics-members"' in analytics
    assert "community_id" not in members + analytics


def test_every_metric_the_dashboards_and_alerts_read_is_on_the_live_endpoints(
    platform: Platform,
) -> None:
    recorded = json.loads((platform.data_dir / "endpoints.json").read_text())["services"]
    created = platform.cli(
        "community", "create", "--name", "Watched", "--topic", "ops", "--as", "w"
    )
    assert created.returncode == 0, created.stderr
    # The scheduler's lateness exists once a job ran: a draft goes live a moment from now.
    _schedule_a_post_soon(platform, created.stdout.strip(), "w")
    wanted: dict[str, list[str]] = {}
    for where, expression in promql_expressions():
        # `up` is Prometheus' own; the NATS server's come from its exporter (the next test).
        for name in metric_names(expression) - {"up"} - set(NATS_EXPORTER_METRICS):
            wanted.setdefault(name, []).append(where)
    missing: set[str] = set(wanted)
    for _ in range(100):
        scraped = ""
        for service in recorded:
            with urllib.request.urlopen(recorded[service]["metrics"], timeout=5) as response:
                scraped += response.read().decode()
        series = {line.split("{")[0].split(" ")[0] for line in scraped.splitlines()}
        missing = set(wanted) - series
        if not missing:
            break
        time.sleep(0.2)
    assert not missing, {name: wanted[name] for name in sorted(missing)}


def test_every_nats_server_figure_the_dashboards_read_is_on_the_live_monitoring_port(
    platform: Platform, nats_server: object
) -> None:
    """prometheus-nats-exporter turns nats-server's /varz and /jsz into the gnatsd_varz_* and
    jetstream_* metrics: the live server answers every field the dashboards read from it."""
    monitor = getattr(nats_server, "monitor_url", None)
    if not isinstance(monitor, str):
        pytest.skip("this run's nats-server has no monitoring port the tests know")
    created = platform.cli("community", "create", "--name", "Nats", "--topic", "ops", "--as", "n")
    assert created.returncode == 0, created.stderr
    read = {
        "varz": f"{monitor}/varz",
        "jsz": f"{monitor}/jsz?accounts=true&streams=true&consumers=true&config=true",
    }
    missing: dict[str, tuple[str, ...]] = {}
    for _ in range(50):  # until the consumers exist and show in /jsz
        answers = {}
        for endpoint, url in read.items():
            with urllib.request.urlopen(url, timeout=5) as response:
                answers[endpoint] = json.loads(response.read())
        missing = {
            name: path
            for name, (endpoint, path) in NATS_EXPORTER_METRICS.items()
            if not _found(answers[endpoint], path)
        }
        if not missing:
            break
        time.sleep(0.2)
    assert not missing, missing


def _found(document: Any, path: tuple[str, ...]) -> bool:
    """Whether `path` leads to a number in `document`; `*` is any item of a list."""
    if not path:
        return isinstance(document, int | float) and not isinstance(document, bool)
    head, *rest = path
    if head == "*":
        return isinstance(document, list) and any(_found(item, tuple(rest)) for item in document)
    return isinstance(document, dict) and head in document and _found(document[head], tuple(rest))


def _schedule_a_post_soon(platform: Platform, community_id: str, user: str) -> None:
    with platform.channel("content") as channel:
        stub = content_grpc.ContentServiceStub(channel)
        request = content_pb.CreatePostRequest(
            request_id=f"soon-{community_id}",
            community_id=community_id,
            kind=content_pb.POST_KIND_ARTICLE,
            title="This week",
            body="Reading group on Friday.",
            draft=True,
        )
        for _ in range(100):  # until content knows the community and its owner
            try:
                draft = stub.CreatePost(request, metadata=platform.auth(user), timeout=5).post
                break
            except grpc.RpcError:
                time.sleep(0.2)
        else:
            raise AssertionError("content never knew the new community")
        # Whole seconds a few ahead: a loaded machine may take a second or more to answer,
        # and a time that has passed is refused.
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
        stub.SchedulePost(
            content_pb.SchedulePostRequest(
                community_id=community_id,
                post_id=draft.id,
                local_time=due.strftime("%Y-%m-%dT%H:%M:%S"),
            ),
            metadata=platform.auth(user),
            timeout=5,
        )


def test_one_trace_runs_from_the_call_through_members_and_nats_into_analytics(
    platform: Platform, collector: Receiver
) -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("system-test")
    with tracer.start_as_current_span("operator creates a community") as root:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        with platform.channel("members") as channel:
            members_grpc.MembersServiceStub(channel).CreateCommunity(
                members_pb.CreateCommunityRequest(name=f"Traced {uuid.uuid4().hex[:6]}", topic="t"),
                metadata=[*platform.auth("tess"), *carrier.items()],
                timeout=10,
            )
    trace_id = format(root.get_span_context().trace_id, "032x")
    wanted = {
        ("studyhall-members", "studyhall.members.v1.MembersService/CreateCommunity"),
        ("studyhall-members", "publish MemberJoined"),
        ("studyhall-analytics", "process MemberJoined"),
        ("studyhall-content", "process MemberJoined"),
    }
    for _ in range(150):
        with collector.lock:
            seen = {(s.service, s.name): s for s in collector.spans if s.trace_id == trace_id}
        if wanted <= set(seen):
            break
        time.sleep(0.1)
    assert wanted <= set(seen), sorted(seen)
    server = seen[("studyhall-members", "studyhall.members.v1.MembersService/CreateCommunity")]
    publish = seen[("studyhall-members", "publish MemberJoined")]
    processed = seen[("studyhall-analytics", "process MemberJoined")]
    assert server.parent_span_id == format(root.get_span_context().span_id, "016x")
    assert publish.parent_span_id == server.span_id
    assert processed.parent_span_id == publish.span_id
    assert "rpc.server.call.duration" in collector.metric_names


def test_a_member_buys_from_the_cli_and_the_books_verify(platform: Platform) -> None:
    created = platform.cli(
        "community", "create", "--name", "Kanji Club", "--topic", "japanese", "--as", "aiko"
    )
    assert created.returncode == 0, created.stderr
    community_id = created.stdout.strip().splitlines()[-1]
    joined = platform.cli("member", "join", community_id, "--as", "ren")
    assert joined.returncode == 0, joined.stderr

    def sold() -> subprocess.CompletedProcess[str]:
        return platform.cli(
            "product", "create", community_id, "--name", "JLPT N3 course",
            "--price-minor", "3000", "--currency", "JPY", "--kind", "paid-course",
            "--as", "aiko",
        )  # fmt: skip

    product = _until(sold, "billing learns that aiko owns the community")
    product_id = product.stdout.strip()

    bought = _until(
        lambda: platform.cli(
            "checkout", community_id, product_id, "--request-id", "ren-n3", "--as", "ren", "--json"
        ),
        "billing learns that ren is a member",
    )
    charge_id = json.loads(bought.stdout)["charge"]["id"]
    assert json.loads(bought.stdout)["invoice"]["total_display"] == "3000 JPY"

    def paid() -> subprocess.CompletedProcess[str]:
        books = platform.cli("ledger", community_id, "--as", "aiko", "--json")
        balances = json.loads(books.stdout).get("balances", []) if books.returncode == 0 else []
        ok = {"account": "provider_cash", "currency": "JPY", "amount_minor": "3000"} in balances
        return books if ok else subprocess.CompletedProcess(books.args, 1, "", "not yet paid")

    _until(paid, "the provider's webhook confirms the charge")
    refunded = platform.cli(
        "refund", community_id, charge_id, "--amount-minor", "1000", "--as", "aiko", "--json"
    )
    assert refunded.returncode == 0, refunded.stderr
    too_much = platform.cli(
        "refund", community_id, charge_id, "--amount-minor", "2001", "--as", "aiko"
    )
    assert too_much.returncode == 1
    assert "amount_minor" in too_much.stdout + too_much.stderr

    verified = platform.cli("billing", "verify", "--as", "ops", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True
    assert int(report["charges"]) >= 1


def _until(
    attempt: Callable[[], subprocess.CompletedProcess[str]], what: str, seconds: float = 30
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + seconds
    while True:
        result = attempt()
        if result.returncode == 0:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {result.stdout} {result.stderr}")
        time.sleep(0.3)


def test_moderators_run_a_community_from_the_cli(platform: Platform) -> None:
    created = platform.cli(
        "community",
        "create",
        "--name",
        "Gaokao Prep",
        "--topic",
        "exams",
        "--join-policy",
        "approval",
        "--question",
        "Which province?",
        "--as",
        "lee",
    )
    assert created.returncode == 0, created.stderr
    community_id = created.stdout.strip()
    asked = platform.cli("member", "join", community_id, "--answer", "Sichuan", "--as", "wu")
    assert asked.returncode == 0, asked.stderr
    assert "asked to join" in asked.stdout
    queue = platform.cli("member", "requests", community_id, "--as", "lee", "--json")
    assert [r["user_id"] for r in json.loads(queue.stdout)] == ["wu"]
    assert (
        platform.cli(
            "member", "review", community_id, "wu", "--approve", "--as", "lee"
        ).stdout.strip()
        == "approved"
    )
    promoted = platform.cli("member", "role", community_id, "wu", "moderator", "--as", "lee")
    assert promoted.returncode == 0, promoted.stderr
    assert "ROLE_MODERATOR" in promoted.stdout
    asked = platform.cli("member", "join", community_id, "--answer", "Hubei", "--as", "zhao")
    assert (
        platform.cli("member", "review", community_id, "zhao", "--approve", "--as", "wu").returncode
        == 0
    )
    muted = platform.cli(
        "member",
        "moderate",
        community_id,
        "zhao",
        "mute",
        "--reason",
        "spam",
        "--until",
        "2099-01-01T00:00:00+00:00",
        "--as",
        "wu",
    )
    assert muted.returncode == 0, muted.stderr
    audit = platform.cli("member", "audit", community_id, "--as", "lee")
    assert audit.returncode == 0, audit.stderr
    for action in ("mute", "approve_join_request", "change_role"):
        assert action in audit.stdout
    refused = platform.cli("member", "audit", community_id, "--as", "zhao")
    assert refused.returncode == 1
    assert "PERMISSION_DENIED" in refused.stderr


def test_a_question_is_asked_answered_and_accepted_from_the_cli(platform: Platform) -> None:
    created = platform.cli(
        "community", "create", "--name", "Python Q&A", "--topic", "python", "--as", "ada"
    )
    assert created.returncode == 0, created.stderr
    community_id = created.stdout.strip()
    joined = platform.cli("member", "join", community_id, "--as", "ben")
    assert joined.returncode == 0, joined.stderr

    def once_content_knows(*args: str) -> subprocess.CompletedProcess[str]:
        # Content learns the community and its members from members' events; until then
        # it answers NOT_FOUND or PERMISSION_DENIED. A fixed request id keeps retries single.
        request_id = uuid.uuid4().hex
        for _ in range(100):
            done = platform.cli(*args, "--request-id", request_id)
            if done.returncode == 0 or not (
                "NOT_FOUND" in done.stderr or "PERMISSION_DENIED" in done.stderr
            ):
                return done
            time.sleep(0.2)
        return done

    topic = once_content_knows("topic", "create", community_id, "--name", "asyncio", "--as", "ada")
    assert topic.returncode == 0, topic.stderr
    topic_id = topic.stdout.strip()
    asked = platform.cli(
        "post",
        "create",
        community_id,
        "--kind",
        "question",
        "--title",
        "Why does gather swallow my exception?",
        "--body",
        "One task fails and the others keep running.",
        "--topic",
        topic_id,
        "--tag",
        "asyncio",
        "--as",
        "ada",
    )
    assert asked.returncode == 0, asked.stderr
    question_id = asked.stdout.strip()
    answered = once_content_knows(
        "comment",
        "add",
        community_id,
        question_id,
        "--body",
        "Use a TaskGroup: the first failure cancels the rest.",
        "--as",
        "ben",
    )
    assert answered.returncode == 0, answered.stderr
    answer_id = answered.stdout.strip()
    accepted = platform.cli("accept", community_id, question_id, answer_id, "--as", "ada", "--json")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["accepted_answer_id"] == answer_id

    feed = platform.cli("feed", community_id, "--topic", topic_id, "--as", "ben", "--json")
    assert feed.returncode == 0, feed.stderr
    [post] = json.loads(feed.stdout)["posts"]
    assert (post["id"], post["kind"], post["topic_id"]) == (
        question_id,
        "POST_KIND_QUESTION",
        topic_id,
    )
    assert post["accepted_answer_id"] == answer_id
    assert post["comment_count"] == "1"
    thread = platform.cli("comment", "list", community_id, question_id, "--as", "ada", "--json")
    assert thread.returncode == 0, thread.stderr
    [answer] = json.loads(thread.stdout)["comments"]
    assert (answer["author_user_id"], answer["is_answer"], answer["accepted"]) == (
        "ben",
        True,
        True,
    )


def test_cli_reports_status_and_exits_non_zero_on_bad_input(platform: Platform) -> None:
    result = platform.cli("community", "create", "--name", "", "--topic", "", "--as", "kai")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr
    assert "name: is required" in result.stderr
    missing = platform.cli("community", "show", str(uuid.uuid4()), "--as", "kai")
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr
    anonymous = platform.cli("community", "show", str(uuid.uuid4()))
    assert anonymous.returncode == 1
    assert "--as USER_ID" in anonymous.stderr


def test_second_run_on_the_same_directory_keeps_the_data(
    tmp_path: Path, nats_url: str, redis_url: str
) -> None:
    data_dir = tmp_path / "data"
    env = _environment(data_dir, nats_url, redis_url)
    first = _start(env, data_dir)
    created = first.cli(
        "community", "create", "--name", "Night Owls", "--topic", "english", "--as", "z"
    )
    assert created.returncode == 0, created.stderr
    community_id = created.stdout.strip()
    output = _stop(first)
    assert "stopped" in output
    # endpoints.json describes a running platform; it goes when the platform does.
    assert not (data_dir / "endpoints.json").exists()

    second = _start(env, data_dir)
    try:
        shown = second.cli("community", "show", community_id, "--as", "z", "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["name"] == "Night Owls"
    finally:
        _stop(second)


def test_taken_port_is_reported_with_the_setting_to_change(
    tmp_path: Path, nats_url: str, redis_url: str
) -> None:
    env = _environment(tmp_path / "data", nats_url, redis_url)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["STUDYHALL_EVENTS_GRPC_PORT"])))
        squatter.listen()
        result = subprocess.run([CLI, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "STUDYHALL_EVENTS_GRPC_PORT" in result.stderr


def test_a_library_resource_and_a_learning_path_are_run_from_the_cli(platform: Platform) -> None:
    created = platform.cli(
        "community", "create", "--name", "IELTS prep", "--topic", "english", "--as", "ada"
    )
    assert created.returncode == 0, created.stderr
    community_id = created.stdout.strip()
    joined = platform.cli("member", "join", community_id, "--as", "ben")
    assert joined.returncode == 0, joined.stderr
    request_id = uuid.uuid4().hex
    for _ in range(100):  # until content has learned the community from members' events
        added = platform.cli(
            "library", "add", community_id, "--title", "Cambridge IELTS 18",
            "--url", "https://example.org/ielts-18", "--type", "book", "--level", "intermediate",
            "--tag", "reading", "--as", "ada", "--request-id", request_id,
        )  # fmt: skip
        if added.returncode == 0 or "NOT_FOUND" not in added.stderr:
            break
        time.sleep(0.2)
    assert added.returncode == 0, added.stderr
    resource_id = added.stdout.strip()
    path = platform.cli(
        "path", "create", community_id, "--title", "Reading band 7",
        "--step", f"resource:{resource_id}", "--step", "check-in:Time one full test",
        "--as", "ada", "--json",
    )  # fmt: skip
    assert path.returncode == 0, path.stderr
    path_id, steps = json.loads(path.stdout)["id"], json.loads(path.stdout)["steps"]
    segment = platform.cli(
        "segment", "create", community_id, "everyone", '{"points_at_least": 0}', "--as", "ada"
    )
    assert segment.returncode == 0, segment.stderr
    recommended = platform.cli(
        "path", "recommend", community_id, path_id, "--segment", segment.stdout.strip(),
        "--as", "ada",
    )  # fmt: skip
    assert (recommended.returncode, recommended.stdout.strip()) == (0, "2"), recommended.stderr
    mine = platform.cli("path", "list", community_id, "--recommended", "--as", "ben", "--json")
    assert [found["id"] for found in json.loads(mine.stdout)["paths"]] == [path_id]
    for step in steps:
        done = platform.cli("path", "done", community_id, path_id, step["id"], "--as", "ben")
        assert done.returncode == 0, done.stderr
    progress = platform.cli("path", "progress", community_id, path_id, "--as", "ben", "--json")
    assert progress.returncode == 0, progress.stderr
    assert json.loads(progress.stdout)["completed_steps"] == 2
    assert json.loads(progress.stdout)["complete_time"]
    rated = platform.cli("library", "rate", community_id, resource_id, "5", "--as", "ben")
    assert (rated.returncode, rated.stdout.strip()) == (0, "5.00"), rated.stderr
    listed = platform.cli(
        "library", "list", community_id, "--tag", "reading", "--top", "--as", "ben", "--json"
    )
    assert listed.returncode == 0, listed.stderr
    [resource] = json.loads(listed.stdout)["resources"]
    assert (resource["id"], resource["my_rating"]) == (resource_id, 5)
    theme = platform.cli(
        "calendar", "theme-create", community_id, "--title", "Weekly goals {date}",
        "--body", "What will you practise?", "--weekday", "1", "--at", "09:00",
        "--time-zone", "Europe/London", "--as", "ada", "--json",
    )  # fmt: skip
    assert theme.returncode == 0, theme.stderr
    assert json.loads(theme.stdout)["time_zone"] == "Europe/London"
    bad = platform.cli("library", "rate", community_id, resource_id, "6", "--as", "ben")
    assert bad.returncode == 1
    assert "stars" in bad.stderr
