"""Print the table of environment variables (README) from the settings classes, or with
--check fail when README.md's table differs from what the code says."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import AliasChoices

from services.analytics.settings import AnalyticsSettings
from services.billing.settings import BillingSettings
from services.content.settings import ContentSettings
from services.events.settings import EventsSettings
from services.kit.settings import ServiceSettings, env_prefix
from services.members.settings import MembersSettings

# Settings only one service has, documented under that service's prefix.
OWN_SETTINGS: list[type[ServiceSettings]] = [
    MembersSettings,
    ContentSettings,
    BillingSettings,
    EventsSettings,
    AnalyticsSettings,
]

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
SERVICES = {
    "members": 50051,
    "content": 50052,
    "events": 50053,
    "billing": 50054,
    "analytics": 50055,
}

RUNNER = [
    ("STUDYHALL_NATS_PORT", "14222", "`make up`: client port of the embedded nats-server."),
    ("STUDYHALL_NATS_MONITOR_PORT", "18222", "`make up`: monitoring port of embedded nats-server."),
    ("STUDYHALL_REDIS_PORT", "16379", "`make up`: port of the local redis-server it starts."),
    (
        "STUDYHALL_SANDBOX_PORT",
        "12111",
        "`make up` and `python -m services.billing.sandbox`: port of the sandbox payment "
        "provider (also `STUDYHALL_SANDBOX_WEBHOOK_URL`, `_WEBHOOK_SECRET`, `_API_KEY`, "
        "`_DATA_DIR`).",
    ),
    ("STUDYHALL_<SERVICE>_ADDRESS", "from endpoints.json", "CLI: gRPC address of a service."),
    ("STUDYHALL_TOKEN", "", "CLI: bearer token to use when not signing locally with `--as`."),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "", "Export traces and metrics over OTLP/gRPC to this."),
    (
        "OTEL_TRACES_SAMPLER_ARG",
        "1.0",
        "Ratio of new traces sampled (parent-based, unless OTEL_TRACES_SAMPLER names another).",
    ),
    ("OTEL_TRACES_SAMPLER", "", "A standard sampler name (`always_off`, `traceidratio`, ...)."),
    ("OTEL_SERVICE_NAME", "studyhall-<service>", "The resource's `service.name`."),
    ("OTEL_RESOURCE_ATTRIBUTES", "", "More resource attributes, `key=value,...`."),
    ("OTEL_TRACES_EXPORTER", "otlp", "`none` turns span export off (`otlp` with an endpoint)."),
    ("OTEL_METRICS_EXPORTER", "otlp", "`none` turns OTLP metrics off (Prometheus stays)."),
    ("OTEL_SDK_DISABLED", "false", "`true`: no spans and no OTel metrics at all."),
]


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in ServiceSettings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            variable = str(alias.choices[0])
        else:
            variable = env_prefix("<service>") + name.upper()
        default = field.default
        if name == "database_url":
            default = "sqlite under DATA_DIR"
        elif name == "grpc_port":
            default = " / ".join(str(port) for port in SERVICES.values())
        elif name == "metrics_port":
            default = " / ".join(str(port - 50051 + 9451) for port in SERVICES.values())
        shown = "" if default in (None, "") else f"`{default}`"
        rows.append(f"| `{variable}` | {shown} | {field.description or ''} |")
    for settings_cls in OWN_SETTINGS:
        for name, field in settings_cls.model_fields.items():
            if name in ServiceSettings.model_fields:
                continue
            variable = env_prefix(settings_cls.service) + name.upper()
            shown = "" if field.default in (None, "") else f"`{field.default}`"
            rows.append(f"| `{variable}` | {shown} | {field.description or ''} |")
    for variable, default, meaning in RUNNER:
        shown = f"`{default}`" if default and not default.startswith("from") else default
        rows.append(f"| `{variable}` | {shown} | {meaning} |")
    return "\n".join(rows)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    wanted = f"{text[:start]}\n{table()}\n{text[end:]}"
    if "--check" in sys.argv:
        if wanted != text:
            sys.exit("README.md's settings table is stale: run `make docs`")
        print("README settings table is fresh")
    else:
        readme.write_text(wanted)


if __name__ == "__main__":
    main()
