"""Traces and metrics: OTLP as the standard OTEL_* variables say, and a Prometheus endpoint.

Metrics never carry a community label: per-community figures come from analytics, and a
label per tenant would explode the series count.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from wsgiref.simple_server import WSGIServer

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import start_http_server

try:
    VERSION = version("studyhall")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0.0.0"


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    metrics_server: WSGIServer | None = None
    metrics_address: str = ""
    _closed: bool = field(default=False, repr=False)

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class MetricsPortInUse(Exception):
    pass


def setup_telemetry(
    service: str,
    *,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    sample_ratio: float | None = None,
) -> Telemetry:
    """Install the process-wide tracer and meter providers; call once, at start.

    The standard OTEL_* variables behave as platform teams expect from any SDK:
    OTEL_SDK_DISABLED=true installs none (no spans, no OTel metrics); OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES name the resource; OTEL_TRACES_SAMPLER (with its _ARG) picks
    the sampler, and without it the default is parent-based with OTEL_TRACES_SAMPLER_ARG as
    the ratio; OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER (`otlp`, `none`) choose what is
    exported to OTEL_EXPORTER_OTLP_ENDPOINT. The Prometheus endpoint is always served."""
    attributes = {
        "service.namespace": "studyhall",
        "service.version": VERSION,
        "service.instance.id": os.environ.get("HOSTNAME")
        or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
    }
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = f"studyhall-{service}"
    resource = Resource.create(attributes)
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        sampler = None  # the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
    else:
        ratio = sample_ratio if sample_ratio is not None else _env_ratio()
        sampler = ParentBased(TraceIdRatioBased(ratio))
    tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    readers: list[MetricReader] = [PrometheusMetricReader()]
    if _exports("OTEL_TRACES_EXPORTER") or _exports("OTEL_METRICS_EXPORTER"):
        # Imported here: the OTLP exporters pull in grpc channels that a local run never needs.
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        if _exports("OTEL_TRACES_EXPORTER"):
            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if _exports("OTEL_METRICS_EXPORTER"):
            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    if not _sdk_disabled():
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)

    telemetry = Telemetry(tracer_provider, meter_provider)
    if metrics_port is not None:
        try:
            server, _thread = start_http_server(metrics_port, addr=metrics_host)
        except OSError as error:
            telemetry.shutdown()
            raise MetricsPortInUse(f"{metrics_host}:{metrics_port}: {error.strerror}") from None
        telemetry.metrics_server = server
        telemetry.metrics_address = f"{metrics_host}:{server.server_port}"
    return telemetry


def _sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _exports(variable: str) -> bool:
    """Whether OTLP export of a signal is on: an endpoint is set (or the variable asks for
    `otlp` explicitly) and the variable does not turn it off."""
    if _sdk_disabled():
        return False
    chosen = {name.strip().lower() for name in os.environ.get(variable, "").split(",")} - {""}
    if chosen:
        return "otlp" in chosen
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _env_ratio() -> float:
    # Standard OTel variable; parent-based so a sampled caller keeps its whole trace.
    raw = os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
    try:
        ratio = float(raw)
    except ValueError:
        raise SystemExit(
            f"invalid setting OTEL_TRACES_SAMPLER_ARG={raw!r}: expected 0.0-1.0"
        ) from None
    if not 0.0 <= ratio <= 1.0:
        raise SystemExit(f"invalid setting OTEL_TRACES_SAMPLER_ARG={raw!r}: expected 0.0-1.0")
    return ratio
