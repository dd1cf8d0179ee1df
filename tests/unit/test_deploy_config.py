"""The deploy configuration agrees with the code and with the rules it promises to keep.

Pure file checks (no Docker, no cluster): every container and pod is health-checked and
memory-limited, versions come from one place, every producer has a relay and every consumer
a consumer process, nats-server always syncs before acknowledging, and every metric that a
dashboard or an alert reads is one the code defines, under the name the OpenTelemetry
Prometheus exporter gives it. scripts/check_deploy.sh runs the real tools (Docker Compose's
loader, kubectl kustomize, kubernetes-validate, hadolint, promtool, nats-server -t).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose"
K8S = DEPLOY / "k8s"
SERVICES = ("members", "content", "events", "billing", "analytics")
LAYERS = ("core.yaml", "observability.yaml")


# ---- what the code says --------------------------------------------------------------------


def app_source(service: str) -> str:
    return (ROOT / "services" / service / "app.py").read_text()


def producers() -> set[str]:
    """Services with an outbox: each needs a relay process."""
    return {s for s in SERVICES if re.search(r"\boutbox=", app_source(s))}


def consumers() -> set[str]:
    """Services with event subscriptions: each needs a consumer process."""
    return {s for s in SERVICES if re.search(r"\bsubscriptions=", app_source(s))}


def default_port(service: str, kind: str) -> int:
    source = (ROOT / "services" / service / "settings.py").read_text()
    match = re.search(rf"default_{kind}_port: ClassVar\[int\] = (\d+)", source)
    assert match, f"no default {kind} port in services/{service}/settings.py"
    return int(match.group(1))


# The OpenTelemetry Prometheus exporter: dots become underscores, the unit is spelled out
# and appended, counters end in _total, histograms are _bucket/_count/_sum.
PROMETHEUS_UNITS = {"ms": "milliseconds", "s": "seconds", "By": "bytes"}


def kit_instruments() -> list[tuple[str, str, str]]:
    """(instrument kind, name, unit) of every instrument created in services/kit."""
    found = []
    for path in sorted((ROOT / "services" / "kit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("create_")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                continue
            unit = ""
            for keyword in node.keywords:
                if keyword.arg == "unit" and isinstance(keyword.value, ast.Constant):
                    unit = str(keyword.value.value)
            found.append((node.func.attr.removeprefix("create_"), node.args[0].value, unit))
    return found


def prometheus_names(kind: str, name: str, unit: str) -> set[str]:
    base = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    if unit:
        assert unit in PROMETHEUS_UNITS, f"{name}: teach this test the Prometheus unit of {unit!r}"
        base = f"{base}_{PROMETHEUS_UNITS[unit]}"
    if kind in {"counter", "observable_counter"}:
        return {f"{base}_total"}
    if kind == "histogram":
        return {f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    return {base}


def defined_metrics() -> set[str]:
    names = set()
    for kind, name, unit in kit_instruments():
        names |= prometheus_names(kind, name, unit)
    return names


# What prometheus-nats-exporter (-varz -jsz=all) serves that the dashboards read, with where in
# nats-server's monitoring JSON each comes from: gnatsd_varz_<field> is /varz's <field>, the
# jetstream_* ones are read out of /jsz (`*` walks a list). tests/system/test_platform.py checks
# a live nats-server answers every path.
NATS_EXPORTER_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gnatsd_varz_connections": ("varz", ("connections",)),
    "gnatsd_varz_in_msgs": ("varz", ("in_msgs",)),
    "gnatsd_varz_out_msgs": ("varz", ("out_msgs",)),
    "gnatsd_varz_slow_consumers": ("varz", ("slow_consumers",)),
    "gnatsd_varz_mem": ("varz", ("mem",)),
    "jetstream_server_total_message_bytes": ("jsz", ("bytes",)),
    "jetstream_stream_total_messages": (
        "jsz",
        ("account_details", "*", "stream_detail", "*", "state", "messages"),
    ),
    "jetstream_consumer_num_pending": (
        "jsz",
        ("account_details", "*", "stream_detail", "*", "consumer_detail", "*", "num_pending"),
    ),
    "jetstream_consumer_num_ack_pending": (
        "jsz",
        ("account_details", "*", "stream_detail", "*", "consumer_detail", "*", "num_ack_pending"),
    ),
}
# The exporter's labels the dashboards group by.
NATS_EXPORTER_LABELS = {"server_id", "stream_name", "consumer_name"}


def code_label_names() -> set[str]:
    """String keys of dict literals in the instrumented kit modules, as Prometheus labels."""
    keys = set()
    for path in [
        ROOT / "services" / "kit" / "rpc.py",
        ROOT / "services" / "kit" / "cache.py",
        ROOT / "services" / "kit" / "ratelimit.py",
        ROOT / "services" / "kit" / "schedule.py",
        *sorted((ROOT / "services" / "kit" / "events").glob("*.py")),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        keys.add(key.value.replace(".", "_"))
    return keys


# ---- reading the deploy files --------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def env_file() -> dict[str, str]:
    values = {}
    for line in (COMPOSE / ".env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    for layer in LAYERS:
        for name, spec in load_yaml(COMPOSE / layer)["services"].items():
            assert name not in services, f"{name} is defined in two layers"
            services[name] = spec
    return services


def process_of(spec: dict[str, Any]) -> tuple[str, str] | None:
    """(service, mode) of a Studyhall container, from `python -m services.<name> <mode>`."""
    command = spec.get("command") or []
    if len(command) == 2 and str(command[0]).startswith("services."):
        return str(command[0]).removeprefix("services."), str(command[1])
    return None


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object written in deploy/k8s (patch files hold lists, not objects)."""
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and "kind" in document:
                yield path, document


def workloads() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path, doc in k8s_documents()
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}
    ]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"]["containers"])


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    }


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def promql_expressions() -> list[tuple[str, str]]:
    """(where, expression) of every query the dashboards and alert rules run."""
    found = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{name}: {panel['title']}", target["expr"]))
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            if query:
                found.append((f"{name}: variable {variable['name']}", str(query)))
    for rule in alert_rules():
        found.append((f"alert {rule['alert']}", rule["expr"]))
    tests = load_yaml(DEPLOY / "prometheus" / "alerts.test.yml")["tests"]
    for test in tests:
        for series in test["input_series"]:
            found.append((f"alert test {test['name']!r}", series["series"]))
    return found


PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "delta", "deriv",
    "histogram_quantile", "absent", "absent_over_time", "topk", "bottomk", "quantile",
    "abs", "clamp_min", "clamp_max", "vector", "scalar", "time", "label_values",
    "and", "or", "unless", "bool", "offset", "on", "ignoring", "group_left", "group_right",
    "max_over_time", "min_over_time", "avg_over_time", "label_replace",
}  # fmt: skip
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def metric_names(expression: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\$\w+", " ", text)
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)", r" \1 ", text)
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return tokens - PROMQL_WORDS


def label_names(expression: str) -> set[str]:
    labels = set()
    for _, inside in GROUPING.findall(expression):
        labels |= {part.strip() for part in inside.split(",") if part.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", expression):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    match = re.search(r"label_values\([^,]+,\s*(\w+)\s*\)", expression)
    if match:
        labels.add(match.group(1))
    return labels


def derived_label_names(expression: str) -> set[str]:
    """Labels a query makes itself with label_replace(v, "dst", "$1", "src", "regex")."""
    return set(re.findall(r'"(\w+)",\s*"\$\d"', expression))


# ---- the Dockerfile -----------------------------------------------------------------------


def test_the_image_is_built_in_two_stages_and_runs_as_uid_10001() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert len(stages) == 2, "a build stage and a runtime stage"
    build, runtime = stages
    # Every runtime package from the hashed lock, then the project itself without resolving.
    assert "pip install --require-hashes -r requirements.lock" in build
    assert "pip install --no-deps ." in build
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert re.search(r"^USER 10001(:10001)?$", runtime, flags=re.MULTILINE)
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime
    assert 'ENTRYPOINT ["python", "-m"]' in runtime
    assert not re.search(r"apt-get|gcc|build-essential", runtime), "no build tools at run time"
    # The base image tag is the one deploy/compose/.env passes as PYTHON_IMAGE.
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert default, "the Dockerfile needs a default PYTHON_IMAGE"
    assert default.group(1) == env_file()["PYTHON_IMAGE"]


def test_the_build_context_holds_every_file_the_dockerfiles_copy() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copied = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied += line.split()[1:-1]
    assert copied
    for source in copied:
        source = source.rstrip("/")
        assert any(source == a or source.startswith(a + "/") for a in allowed), source
        assert (ROOT / source).exists(), source


def test_the_collector_image_pins_its_versions_in_the_env_file() -> None:
    text = (DEPLOY / "otel" / "Dockerfile").read_text()
    env = env_file()
    for variable in ("OTEL_COLLECTOR_IMAGE", "BUSYBOX_IMAGE"):
        default = re.search(rf"^ARG {variable}=(\S+)$", text, flags=re.MULTILINE)
        assert default, variable
        assert default.group(1) == env[variable]


# ---- Docker Compose ------------------------------------------------------------------------


def test_the_root_compose_file_only_includes_the_layers() -> None:
    root = load_yaml(ROOT / "docker-compose.yml")
    assert set(root) == {"name", "include"}
    assert [item["path"] for item in root["include"]] == [f"deploy/compose/{n}" for n in LAYERS]


def test_every_container_has_a_healthcheck_and_a_memory_limit() -> None:
    services = compose_services()
    one_shot = {
        name
        for spec in services.values()
        for name, dependency in (spec.get("depends_on") or {}).items()
        if dependency["condition"] == "service_completed_successfully"
    }
    for name, spec in services.items():
        check = spec.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if check.get("disable"):
            on_demand = "tools" in spec.get("profiles", [])
            assert name in one_shot or on_demand, f"{name} runs for good: it needs a healthcheck"
            assert spec.get("restart") == "no", f"{name}: a one-shot container restarts"
        else:
            assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        limits = (spec.get("deploy") or {}).get("resources", {}).get("limits", {})
        assert limits.get("memory") or spec.get("mem_limit"), f"{name} has no memory limit"


def test_containers_start_when_what_they_need_is_healthy() -> None:
    services = compose_services()
    for name, spec in services.items():
        depends = spec.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dependency, rule in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in {"service_healthy", "service_completed_successfully"}
    for name, spec in services.items():
        if (process := process_of(spec)) and process[1] == "serve":
            assert {"postgres", "nats", "redis", "keys"} <= set(spec["depends_on"]), name


def test_image_versions_and_published_ports_come_from_the_env_file() -> None:
    env = env_file()
    for key, value in env.items():
        if key.endswith("_IMAGE"):
            tag = value.rsplit("/", 1)[-1].partition(":")[2]
            assert tag, f"{key}={value} has no tag"
            assert tag != "latest", f"{key}={value} is not pinned"
    for layer in LAYERS:
        text = (COMPOSE / layer).read_text()
        used = set(re.findall(r"\$\{([A-Za-z0-9_]+)", text))
        assert used <= set(env), f"{layer} uses variables missing from .env: {used - set(env)}"
    for name, spec in compose_services().items():
        image = spec.get("image")
        if image is None:
            args = spec["build"]["args"]
            assert all(re.fullmatch(r"\$\{\w+\}", str(v)) for v in args.values()), name
        else:
            assert re.fullmatch(r"\$\{\w+\}", image), f"{name}: image {image} not from .env"
        for port in spec.get("ports", []):
            host_ip, host_port, _container = str(port).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond this machine"
            assert re.fullmatch(r"\$\{\w+\}", host_port), f"{name}: port {port} not from .env"


def test_compose_runs_every_api_and_a_relay_or_consumer_per_producer_or_consumer() -> None:
    processes: dict[str, set[str]] = {"serve": set(), "relay": set(), "consume": set()}
    for name, spec in compose_services().items():
        process = process_of(spec)
        if process is None:
            continue
        service, mode = process
        processes[mode].add(service)
        environment = spec["environment"]
        assert environment["STUDYHALL_RELAY"] == "external"
        assert environment["STUDYHALL_CONSUMERS"] == "external"
        assert environment["OTEL_RESOURCE_ATTRIBUTES"] == f"studyhall.mode={mode}"
        urls = {key for key in environment if key.endswith("_DATABASE_URL")}
        assert urls == {f"STUDYHALL_{service.upper()}_DATABASE_URL"}, f"{name} sees {urls}"
        assert environment[f"STUDYHALL_{service.upper()}_GRPC_HOST"] == "0.0.0.0"
        # Each container has its own network, so a worker answers on its service's default port.
        probe = " ".join(spec["healthcheck"]["test"])
        port = default_port(service, "grpc")
        assert probe.endswith(f"/app/deploy/healthcheck.py grpc 127.0.0.1:{port}"), name
    assert processes["serve"] == set(SERVICES)
    assert processes["relay"] == producers()
    assert processes["consume"] == consumers()


def test_service_database_urls_match_the_roles_postgres_creates() -> None:
    sql = (DEPLOY / "postgres" / "init-databases.sql").read_text()
    roles = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']+)'", sql))
    databases = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", sql))
    assert set(roles) == set(SERVICES)
    assert databases == {service: service for service in SERVICES}
    for service in SERVICES:
        assert f"REVOKE ALL ON DATABASE {service} FROM PUBLIC" in sql
    urls = [
        value
        for spec in compose_services().values()
        for key, value in (spec.get("environment") or {}).items()
        if key.endswith("_DATABASE_URL")
    ]
    urls += re.findall(
        r"DATABASE_URL=(\S+)", (K8S / "overlays" / "dev" / "kustomization.yaml").read_text()
    )
    assert urls
    for url in urls:
        match = re.fullmatch(r"postgresql\+asyncpg://(\w+):([^@]+)@postgres:5432/(\w+)", url)
        assert match, url
        user, password, database = match.groups()
        assert roles[user] == password, url
        assert database == user, url


def test_the_dev_overlay_creates_the_same_databases_as_compose() -> None:
    def statements(path: Path) -> list[str]:
        lines = path.read_text().splitlines()
        return [line for line in lines if line.strip() and not line.startswith("--")]

    assert statements(K8S / "overlays" / "dev" / "init-databases.sql") == statements(
        DEPLOY / "postgres" / "init-databases.sql"
    )


def scrape_targets() -> dict[str, set[str]]:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    return {
        job["job_name"]: {target for group in job["static_configs"] for target in group["targets"]}
        for job in config["scrape_configs"]
    }


def test_prometheus_scrapes_every_studyhall_process_on_its_metrics_port() -> None:
    targets = scrape_targets()
    expected = set()
    for name, spec in compose_services().items():
        if process := process_of(spec):
            expected.add(f"{name}:{default_port(process[0], 'metrics')}")
    assert {f"{s}:{default_port(s, 'metrics')}" for s in SERVICES} <= expected
    # One job, so the alerts on `up{job="studyhall"}` cover relays and consumers too.
    assert targets["studyhall"] == expected
    collector = load_yaml(DEPLOY / "otel" / "collector.yaml")
    endpoint = collector["exporters"]["prometheus"]["endpoint"]
    assert f"otel-collector:{endpoint.rsplit(':', 1)[1]}" in targets["otel-collector"]


def test_nats_server_metrics_reach_prometheus_through_the_exporter() -> None:
    services = compose_services()
    exporter = services["nats-exporter"]
    assert exporter["depends_on"]["nats"]["condition"] == "service_healthy"
    args = exporter["command"]
    assert args[-1] == "http://nats:8222", "the exporter reads the monitoring port"
    assert {"-varz", "-jsz=all"} <= set(args)
    port = args[args.index("-port") + 1]
    assert f"nats-exporter:{port}" in scrape_targets()["nats"]
    assert re.search(r"^http: 0\.0\.0\.0:8222$", (DEPLOY / "nats" / "nats.conf").read_text(), re.M)
    # The same exporter, as a sidecar of every nats-server pod of both overlays.
    image = env_file()["NATS_EXPORTER_IMAGE"]
    pods = [doc for _, doc in workloads() if doc["metadata"]["name"] == "nats"]
    assert len(pods) == 2
    for pod in pods:
        sidecar = next(c for c in containers(pod) if c["name"] == "nats-exporter")
        assert sidecar["image"] == image
        assert sidecar["args"][-1] == "http://localhost:8222"
        assert {"-varz", "-jsz=all"} <= set(sidecar["args"])
        annotations = pod["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(sidecar["ports"][0]["containerPort"])
    # A dashboard row shows them.
    backbone = dashboards()["studyhall-backbone.json"]
    assert "NATS server" in [p["title"] for p in backbone["panels"] if p["type"] == "row"]
    shown = {
        name
        for panel in backbone["panels"]
        for target in panel.get("targets", [])
        for name in metric_names(target["expr"])
    }
    assert set(NATS_EXPORTER_METRICS) <= shown


def test_the_collector_pipelines_use_only_configured_components() -> None:
    collector = load_yaml(DEPLOY / "otel" / "collector.yaml")
    for name, pipeline in collector["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in collector[kind], f"{name} uses undefined {component}"
    assert set(collector["service"]["extensions"]) <= set(collector["extensions"])
    # Every Studyhall process is scraped directly; the collector must not repeat its metrics.
    metric_filter = collector["processors"]["filter/scraped-directly"]["metrics"]["metric"]
    assert metric_filter == ['resource.attributes["service.namespace"] == "studyhall"']
    assert '"service.namespace": "studyhall"' in (ROOT / "services/kit/telemetry.py").read_text()
    assert "filter/scraped-directly" in collector["service"]["pipelines"]["metrics"]["processors"]


# ---- NATS ----------------------------------------------------------------------------------


def nats_configs() -> list[Path]:
    return sorted(DEPLOY.rglob("*.conf"))


def test_every_nats_server_syncs_to_disk_before_acknowledging() -> None:
    configs = nats_configs()
    assert len(configs) >= 3, configs
    for path in configs:
        text = path.read_text()
        block = re.search(r"jetstream\s*\{([^}]*)\}", text)
        assert block, f"{path} has no jetstream block"
        assert re.search(r"^\s*sync_interval:\s*always\s*$", block.group(1), re.MULTILINE), path
        assert len(re.findall(r"sync_interval", text)) == 1, path
    runner = (ROOT / "services" / "cli" / "runner.py").read_text()
    assert "sync_interval: always" in runner


def test_prod_runs_a_three_node_nats_cluster_with_three_replicas_per_stream() -> None:
    prod = K8S / "overlays" / "prod"
    statefulsets = [
        doc
        for path, doc in k8s_documents()
        if doc["kind"] == "StatefulSet" and prod in path.parents
    ]
    (nats,) = [doc for doc in statefulsets if doc["metadata"]["name"] == "nats"]
    assert nats["spec"]["replicas"] == 3
    routes = re.findall(
        r"nats://nats-(\d)\.nats-headless:6222", (prod / "nats" / "nats.conf").read_text()
    )
    assert sorted(routes) == ["0", "1", "2"]
    kustomization = load_yaml(prod / "kustomization.yaml")
    literals = [
        literal
        for generator in kustomization["configMapGenerator"]
        for literal in generator.get("literals", [])
    ]
    assert "STUDYHALL_STREAM_REPLICAS=3" in literals


def test_kubernetes_infrastructure_runs_the_versions_compose_runs() -> None:
    env = env_file()
    expected = {
        "nats": env["NATS_IMAGE"],
        "postgres": env["POSTGRES_IMAGE"],
        "redis": env["REDIS_IMAGE"],
    }
    seen = set()
    for _path, doc in workloads():
        for container in containers(doc):
            if container["name"] in expected:
                assert container["image"] == expected[container["name"]], container["name"]
                seen.add(container["name"])
    assert seen == set(expected)


# ---- Kubernetes ----------------------------------------------------------------------------


def test_every_pod_has_probes_resources_and_a_locked_down_container() -> None:
    for path, doc in workloads():
        where = f"{path.relative_to(K8S)}: {doc['kind']} {doc['metadata']['name']}"
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod.get("automountServiceAccountToken") is False, where
        for container in containers(doc):
            if doc["kind"] != "Job":
                assert "readinessProbe" in container, where
                assert "livenessProbe" in container, where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where


def studyhall_deployments() -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for path, doc in k8s_documents()
        if doc["kind"] == "Deployment" and path.parent == K8S / "base"
    }


def test_every_process_answers_native_grpc_probes_and_is_scraped_on_its_own_ports() -> None:
    deployments = studyhall_deployments()
    for service in SERVICES:
        (container,) = containers(deployments[service])
        assert container["args"] == [f"services.{service}", "serve"]
    for name, doc in deployments.items():
        (container,) = containers(doc)
        service = container["args"][0].removeprefix("services.")
        grpc, metrics = default_port(service, "grpc"), default_port(service, "metrics")
        assert container["startupProbe"]["grpc"] == {"port": grpc, "service": "liveness"}, name
        assert container["readinessProbe"]["grpc"] == {"port": grpc, "service": ""}, name
        assert container["livenessProbe"]["grpc"] == {"port": grpc, "service": "liveness"}, name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        # Billing's API pods also take the payment provider's webhooks over HTTP.
        extra = {"webhooks": 8054} if name == "billing" else {}
        assert ports == {"grpc": grpc, "metrics": metrics, **extra}, name
        template = doc["spec"]["template"]
        assert template["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(metrics),
            "prometheus.io/path": "/metrics",
        }, name
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in template["spec"]["volumes"])


def test_kubernetes_runs_a_relay_per_producer_and_consumers_per_consuming_service() -> None:
    modes: dict[str, set[str]] = {"relay": set(), "consume": set()}
    for name, doc in studyhall_deployments().items():
        (container,) = containers(doc)
        module, mode = container["args"]
        if mode in modes:
            service = module.removeprefix("services.")
            modes[mode].add(service)
            suffix = "relay" if mode == "relay" else "consumer"
            assert name == f"{service}-{suffix}"
            env = {e["name"]: e for e in container["env"]}
            assert env["OTEL_RESOURCE_ATTRIBUTES"]["value"] == f"studyhall.mode={mode}"
    assert modes["relay"] == producers()
    assert modes["consume"] == consumers()
    config = load_yaml(K8S / "base" / "config.yaml")["data"]
    assert config["STUDYHALL_RELAY"] == "external"
    assert config["STUDYHALL_CONSUMERS"] == "external"


def test_every_deployment_has_a_disruption_budget_and_an_autoscaler() -> None:
    budgets = {}
    scalers = {}
    for path, doc in k8s_documents():
        if path.parent != K8S / "base":
            continue
        if doc["kind"] == "PodDisruptionBudget":
            budgets[doc["metadata"]["name"]] = doc["spec"]["selector"]["matchLabels"]
        if doc["kind"] == "HorizontalPodAutoscaler":
            scalers[doc["spec"]["scaleTargetRef"]["name"]] = doc
    for name, doc in studyhall_deployments().items():
        assert budgets.get(name) == doc["spec"]["selector"]["matchLabels"], name
        assert name in scalers, name


def test_each_pod_reads_only_its_own_database_url() -> None:
    for name, doc in studyhall_deployments().items():
        (container,) = containers(doc)
        service = container["args"][0].removeprefix("services.")
        secrets = {
            e["valueFrom"]["secretKeyRef"]["key"]
            for e in container["env"]
            if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        }
        # Billing's API pods hold the payment provider's key and webhook secret too.
        provider = (
            {"STUDYHALL_BILLING_PROVIDER_API_KEY", "STUDYHALL_BILLING_WEBHOOK_SECRET"}
            if name == "billing"
            else set()
        )
        assert secrets == {f"STUDYHALL_{service.upper()}_DATABASE_URL", *provider}, name
        assert all("secretRef" not in source for source in container.get("envFrom", [])), name


def test_network_policies_deny_by_default_and_allow_what_is_needed() -> None:
    policies = {
        doc["metadata"]["name"]: doc["spec"]
        for path, doc in k8s_documents()
        if doc["kind"] == "NetworkPolicy" and path.parent == K8S / "base"
    }
    deny = policies["default-deny"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    assert {53} <= {p["port"] for rule in policies["allow-dns"]["egress"] for p in rule["ports"]}
    grpc_ports = {
        p["port"] for rule in policies["studyhall-grpc-ingress"]["ingress"] for p in rule["ports"]
    }
    assert grpc_ports == {default_port(service, "grpc") for service in SERVICES}
    egress = {p["port"] for rule in policies["studyhall-egress"]["egress"] for p in rule["ports"]}
    assert {5432, 6379, 4222} <= egress
    # The scraper reaches the metrics port of every process, APIs and workers alike.
    scraped = policies["studyhall-metrics-ingress"]
    metrics_ports = {p["port"] for rule in scraped["ingress"] for p in rule["ports"]}
    assert metrics_ports == {default_port(service, "metrics") for service in SERVICES}
    selector = scraped["podSelector"]
    assert selector["matchLabels"] == {"app.kubernetes.io/part-of": "studyhall"}
    (components,) = selector["matchExpressions"]
    assert components["key"] == "app.kubernetes.io/component"
    assert components["operator"] == "In"
    deployed = {
        doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for doc in studyhall_deployments().values()
    }
    assert set(components["values"]) == deployed == {"server", "relay", "consumer"}
    # The infrastructure each overlay adds is reachable from Studyhall pods only.
    for overlay in ("dev", "prod"):
        names = [
            doc["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/name")
            for path, doc in k8s_documents()
            if doc["kind"] == "NetworkPolicy" and K8S / "overlays" / overlay in path.parents
        ]
        assert "nats" in names, overlay


def test_kustomizations_list_every_manifest_beside_them() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed = load_yaml(kustomization).get("resources", [])
        patches = {
            patch["path"]
            for patch in load_yaml(kustomization).get("patches", [])
            if "path" in patch
        }
        for manifest in kustomization.parent.glob("*.yaml"):
            if manifest.name == "kustomization.yaml" or manifest.name in patches:
                continue
            assert manifest.name in listed, f"{manifest} is not in {kustomization}"
        for resource in listed:
            assert (kustomization.parent / resource).exists(), resource


# ---- metrics, dashboards, alerts -----------------------------------------------------------


def test_the_backbone_metrics_have_the_names_the_dashboards_expect() -> None:
    names = defined_metrics()
    assert {
        "rpc_server_call_duration_seconds_bucket",
        "studyhall_outbox_backlog",
        "studyhall_outbox_oldest_age_seconds",
        "studyhall_outbox_published_total",
        "studyhall_consumer_lag",
        "studyhall_consumer_dead_letters_total",
    } <= names


def test_dashboards_and_alerts_read_only_metrics_the_code_defines() -> None:
    known = defined_metrics() | {"up"} | set(NATS_EXPORTER_METRICS)
    used = set()
    for where, expression in promql_expressions():
        names = metric_names(expression)
        assert names <= known, f"{where}: unknown metric(s) {sorted(names - known)}"
        used |= names
    # Every backbone metric is on a dashboard or in an alert.
    backbone = {name for name in defined_metrics() if name.startswith("studyhall_")}
    assert backbone <= used, f"never shown or alerted on: {sorted(backbone - used)}"


def test_no_query_groups_or_filters_by_community() -> None:
    known = code_label_names() | {"job", "instance", "le"} | NATS_EXPORTER_LABELS
    for where, expression in promql_expressions():
        labels = label_names(expression)
        assert not [label for label in labels if "community" in label], where
        labels -= derived_label_names(expression)
        assert labels <= known, f"{where}: unknown label(s) {sorted(labels - known)}"


def test_dashboards_use_the_provisioned_data_sources() -> None:
    provisioned = load_yaml(
        DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
    )
    uids = {source["uid"] for source in provisioned["datasources"]}
    seen_uids = set()
    for name, board in dashboards().items():
        assert board["uid"] not in seen_uids, name
        seen_uids.add(board["uid"])
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] in uids, f"{name}: {panel['title']}"
    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml")
    compose = (COMPOSE / "observability.yaml").read_text()
    for provider in providers["providers"]:
        assert f"../grafana/dashboards:{provider['options']['path']}:ro" in compose


def test_every_alert_is_explained_in_the_operations_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        assert rule["alert"] in guide, f"docs/operations.md does not explain {rule['alert']}"
    tested = {
        case["alertname"]
        for test in load_yaml(DEPLOY / "prometheus" / "alerts.test.yml")["tests"]
        for case in test["alert_rule_test"]
    }
    assert tested <= {rule["alert"] for rule in alert_rules()}


def test_metric_names_are_read_out_of_queries() -> None:
    expression = (
        "sum by (rpc_service) (label_replace(rate(rpc_server_call_duration_seconds_count{"
        'rpc_method=~"($s)/.*", rpc_response_status_code!="OK"}[$__rate_interval]),'
        ' "rpc_service", "$1", "rpc_method", "([^/]+)/.*")) / on (job) up'
    )
    assert metric_names(expression) == {"rpc_server_call_duration_seconds_count", "up"}
    assert label_names(expression) == {
        "rpc_service",
        "rpc_method",
        "rpc_response_status_code",
        "job",
    }
    assert derived_label_names(expression) == {"rpc_service"}
    assert metric_names("label_values(studyhall_consumer_lag, consumer)") == {
        "studyhall_consumer_lag"
    }


# ---- deploy/healthcheck.py -----------------------------------------------------------------


def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def health_server() -> Iterator[tuple[str, Any]]:
    """A grpc.health.v1 server on a free port, as every Studyhall process runs one."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_healthcheck_exits_0_only_while_the_process_is_serving(
    health_server: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from grpc_health.v1 import health_pb2

    module = healthcheck()
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("liveness", health_pb2.HealthCheckResponse.SERVING)
    assert module.main(["grpc", address]) == 0
    # A relay whose NATS connection dropped: alive, not ready.
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert module.main(["grpc", address]) == 1
    assert module.main(["grpc", address, "--service", "liveness"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"healthy: {address} readiness: SERVING",
        f"unhealthy: {address} readiness: NOT_SERVING",
        f"healthy: {address} liveness: SERVING",
    ]


def test_healthcheck_of_a_process_that_does_not_answer_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    assert healthcheck().main(["grpc", address, "--timeout", "1"]) == 1
    assert capsys.readouterr().out.startswith(f"unhealthy: {address}: ")
