from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.kit.logs import JsonFormatter

pytestmark = pytest.mark.unit


def test_log_line_is_json_with_the_current_trace_and_span() -> None:
    formatter = JsonFormatter("members")
    tracer = TracerProvider().get_tracer("test")
    record = logging.makeLogRecord(
        {
            "name": "x",
            "levelname": "INFO",
            "msg": "joined %s",
            "args": ("c1",),
            "community_id": "c1",
        }
    )
    with tracer.start_as_current_span("work") as span:
        line = json.loads(formatter.format(record))
    context = span.get_span_context()
    assert line["message"] == "joined c1"
    assert line["service"] == "members"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["community_id"] == "c1"


def test_log_line_outside_a_span_has_no_trace_id() -> None:
    line = json.loads(JsonFormatter("members").format(logging.makeLogRecord({"msg": "hi"})))
    assert "trace_id" not in line
