"""Write docs/asyncapi.json, the catalogue of every stream, subject and event type, from the
contracts (every message in proto/studyhall/<service>/v1/*_events.proto is an event of that
service) and the services' subscriptions, and the consumer kit's copy of it
(clients/python/studyhall_consumer/asyncapi.json).

`--check` fails when either is stale or the catalogue is not a valid AsyncAPI 3.0 document:
it is validated against the official AsyncAPI 3.0.0 JSON Schema, vendored in docs/schemas
(see the README there). `--validate FILE` validates another file the same way."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from jsonschema import Draft7Validator

from services.kit.events.consumer import Subscription
from services.kit.events.deadletter import CONSUMER, REASON, SEQUENCE, STREAM, SUBJECT, TIME
from services.kit.events.streams import DEADLETTER_PREFIX, DEADLETTER_STREAM, stream_name
from services.kit.service import ServiceSpec, build_dependencies
from services.kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "asyncapi.json"
# The consumer kit ships the catalogue it was built against (its subscribers read streams
# and filter subjects from it); the same bytes, checked with the original.
KIT_COPY = ROOT / "clients" / "python" / "studyhall_consumer" / "asyncapi.json"
# The official schema of AsyncAPI 3.0.0, from the npm package @asyncapi/specs (the version is
# in docs/schemas/README.md); every definition it refers to is bundled in the file.
SCHEMA = ROOT / "docs" / "schemas" / "asyncapi-3.0.0.json"
SERVICES = ("members", "content", "events", "billing", "analytics")

_SCALARS = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

CLOUDEVENTS_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 binary mode: attributes as NATS headers (names are "
    "case-insensitive when read).",
    "required": [
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-time",
        "ce-subject",
        "ce-communityid",
        "ce-datacontenttype",
        "content-type",
        "Nats-Msg-Id",
    ],
    "properties": {
        "ce-specversion": {"const": "1.0"},
        "ce-id": {"type": "string", "format": "uuid", "description": "Event id; the inbox key."},
        "ce-source": {"type": "string", "description": "/studyhall/<service>"},
        "ce-type": {"type": "string", "description": "Full protobuf name of the body."},
        "ce-time": {"type": "string", "format": "date-time"},
        "ce-subject": {"type": "string", "description": "The aggregate, e.g. communities/<id>"},
        "ce-communityid": {"type": "string", "format": "uuid"},
        "ce-datacontenttype": {"const": "application/protobuf"},
        "content-type": {"const": "application/protobuf"},
        "Nats-Msg-Id": {"type": "string", "description": "Equals ce-id when first published."},
        "traceparent": {"type": "string", "description": "W3C trace context of the cause."},
        "tracestate": {"type": "string"},
    },
}


DEADLETTER_HEADERS = {
    "type": "object",
    "description": "The original message's headers (CloudEvents attributes when it had them; "
    "a message parked for lacking them has not), its Nats-Msg-Id replaced, plus where it "
    "came from and why it was parked.",
    "required": [REASON, CONSUMER, SUBJECT, STREAM, SEQUENCE, TIME, "Nats-Msg-Id"],
    "properties": {
        **{
            name: {**spec, "description": f"As on the original. {spec.get('description', '')}"}
            for name, spec in CLOUDEVENTS_HEADERS["properties"].items()
            if name != "Nats-Msg-Id"
        },
        REASON: {"type": "string", "maxLength": 1000, "description": "Why it was parked."},
        CONSUMER: {"type": "string", "description": "Durable name of the consumer."},
        SUBJECT: {"type": "string", "description": "The subject it was published on."},
        STREAM: {"type": "string", "description": "The stream it was read from."},
        SEQUENCE: {"type": "string", "description": "Its sequence in that stream."},
        TIME: {"type": "string", "format": "date-time", "description": "When it was parked."},
        "Nats-Msg-Id": {
            "type": "string",
            "description": "deadletter:<consumer>:<stream>:<sequence>: parking twice keeps one.",
        },
    },
}


def event_messages(service: str) -> list[Descriptor]:
    found: list[Descriptor] = []
    for path in sorted((ROOT / "proto" / "studyhall" / service / "v1").glob("*_events.proto")):
        module = importlib.import_module(f"studyhall.{service}.v1.{path.stem}_pb2")
        found.extend(module.DESCRIPTOR.message_types_by_name.values())
    return found


def schema(message: Descriptor) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            assert field.message_type is not None
            if field.message_type.full_name == "google.protobuf.Timestamp":
                value: dict[str, Any] = {"type": "string", "format": "date-time"}
            else:
                value = schema(field.message_type)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            value = {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        else:
            value = dict(_SCALARS[field.type])
        if field.is_repeated:
            value = {"type": "array", "items": value}
        properties[field.name] = value
    return {"type": "object", "x-protobuf-message": message.full_name, "properties": properties}


def consumed(spec: ServiceSpec) -> Sequence[Subscription]:
    """The subscriptions a service declares, built against dependencies that stay inert:
    nothing connects to a database, Redis or NATS until a process runs."""
    if spec.subscriptions is None:
        return []
    return [
        consumer.subscription for consumer in build_dependencies(spec, ServiceSettings()).consumers
    ]


def published(service: str) -> set[str]:
    """The events a service's code builds (`Name(` after a module alias): what it publishes
    today, as opposed to what its contract declares for capabilities still to come."""
    code = "\n".join(path.read_text() for path in (ROOT / "services" / service).rglob("*.py"))
    return set(re.findall(r"\.([A-Z][A-Za-z]+)\(", code))


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    specs: dict[str, ServiceSpec] = {
        name: importlib.import_module(f"services.{name}.app").SPEC for name in SERVICES
    }
    for service in SERVICES:
        live = published(service)
        for message in event_messages(service):
            key = f"{service}.{message.name}"
            messages[key] = {
                "name": message.full_name,
                "title": message.name,
                "contentType": "application/protobuf",
                "headers": CLOUDEVENTS_HEADERS,
                "payload": {
                    "schemaFormat": "application/schema+json;version=draft-07",
                    "schema": schema(message),
                },
            }
            channels[key] = {
                "address": f"studyhall.{service}.{{communityId}}.{message.name}",
                "description": f"Stream {stream_name(service)}.",
                "x-stream": stream_name(service),
                "parameters": {"communityId": {"description": "The community the event is about."}},
                "messages": {message.name: {"$ref": f"#/components/messages/{key}"}},
            }
            operations[f"{service}.publish.{message.name}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{key}"},
                "summary": f"The {service} service publishes it through its outbox."
                if message.name in live
                else f"Contract only: the {service} service does not publish it yet.",
            }
    for consumer_service, spec in specs.items():
        for subscription in consumed(spec):
            for message_type in subscription.event_types:
                key = f"{subscription.source_service}.{message_type.DESCRIPTOR.name}"
                operations[f"{subscription.name}.{message_type.DESCRIPTOR.name}"] = {
                    "action": "receive",
                    "channel": {"$ref": f"#/channels/{key}"},
                    "summary": f"{consumer_service} consumes it (durable {subscription.name}).",
                }
    messages["deadletter.DeadLetter"] = {
        "name": "DeadLetter",
        "title": "A parked message",
        "summary": "A message a consumer could not handle: its original body and headers, "
        "with why it was parked and where it came from.",
        "headers": DEADLETTER_HEADERS,
        "payload": {
            "schemaFormat": "application/schema+json;version=draft-07",
            "schema": {
                "description": "The original body, byte for byte: an event's protobuf body, "
                "or whatever a poison message carried.",
            },
        },
    }
    channels["deadletter"] = {
        "address": f"{DEADLETTER_PREFIX}.{{consumer}}",
        "description": f"Stream {DEADLETTER_STREAM}: messages a consumer could not handle, "
        f"with the original headers and body plus {REASON}, {CONSUMER} and {SUBJECT}.",
        "parameters": {"consumer": {"description": "Durable name of the consumer."}},
        "messages": {"DeadLetter": {"$ref": "#/components/messages/deadletter.DeadLetter"}},
    }
    operations["deadletter.park"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/deadletter"},
        "summary": "Every consumer parks a message it cannot handle (malformed, or failing "
        "past its redelivery limit), then acknowledges the original.",
        "messages": [{"$ref": "#/channels/deadletter/messages/DeadLetter"}],
    }
    operations["deadletter.replay"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/deadletter"},
        "summary": "`studyhall dlq list` reads them; `studyhall dlq replay` republishes one to "
        "its original subject and removes it.",
        "messages": [{"$ref": "#/channels/deadletter/messages/DeadLetter"}],
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Studyhall events",
            "version": "1.0.0",
            "description": "Facts the Studyhall services publish on NATS JetStream.",
        },
        "defaultContentType": "application/protobuf",
        "servers": {
            "local": {
                "host": "127.0.0.1:14222",
                "pathname": "/",
                "protocol": "nats",
                "description": "make up: the embedded nats-server (NATS has no path: the "
                "subjects are the channels' addresses).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def schema_errors(catalogue: Any) -> list[str]:
    """Where `catalogue` breaks the AsyncAPI 3.0.0 JSON Schema, one line each."""
    validator = Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(catalogue), key=lambda error: list(error.path))
    return [
        f"{'/'.join(map(str, error.path)) or '(root)'}: {_shorten(error.message)}"
        for error in errors
    ]


def _shorten(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else f"{message[:limit]}..."


def validate(path: Path) -> None:
    problems = schema_errors(json.loads(path.read_text()))
    if problems:
        for problem in problems[:20]:
            print(problem, file=sys.stderr)
        sys.exit(f"{path} is not a valid AsyncAPI 3.0.0 document ({len(problems)} error(s))")
    print(f"{path} is valid AsyncAPI 3.0.0")


def main() -> None:
    if "--validate" in sys.argv:
        validate(Path(sys.argv[sys.argv.index("--validate") + 1]))
        return
    text = json.dumps(document(), indent=2, sort_keys=True) + "\n"
    if "--check" in sys.argv:
        for output in (OUTPUT, KIT_COPY):
            if not output.exists() or output.read_text() != text:
                sys.exit(f"{output.relative_to(ROOT)} is stale: run `make asyncapi`")
        print("docs/asyncapi.json and the consumer kit's copy are fresh")
        validate(OUTPUT)
        return
    OUTPUT.write_text(text)
    KIT_COPY.write_text(text)


if __name__ == "__main__":
    main()
