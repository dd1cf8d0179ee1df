"""Traces and metrics: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and a Prometheus endpoint.

Metrics never carry a community label: per-community figures come from analytics, and a
label per tenant would explode the series count.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
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

VERSION = "0.1.0"


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
    """Install the process-wide tracer and meter providers; call once, at start."""
    resource = Resource.create(
        {
            "service.name": f"studyhall-{service}",
            "service.namespace": "studyhall",
            "service.version": VERSION,
            "service.instance.id": os.environ.get("HOSTNAME")
            or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
        }
    )
    ratio = sample_ratio if sample_ratio is not None else _env_ratio()
    tracer_provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(ratio))
    )
    readers: list[MetricReader] = [PrometheusMetricReader()]
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        # Imported here: the OTLP exporters pull in grpc channels that a local run never needs.
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
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
