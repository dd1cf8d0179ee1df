"""The event catalogue (docs/asyncapi.json) against the official AsyncAPI 3.0.0 JSON Schema:
`make asyncapi-check` refuses a catalogue that breaks it (scripts/asyncapi.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "asyncapi.json"
SCHEMA = ROOT / "docs" / "schemas" / "asyncapi-3.0.0.json"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/asyncapi.py", "--validate", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_catalogue_names_the_server_path_and_the_dead_letters() -> None:
    catalogue: dict[str, Any] = json.loads(CATALOGUE.read_text())
    assert catalogue["asyncapi"] == "3.0.0"
    assert catalogue["servers"]["local"]["pathname"] == "/"
    dead = catalogue["channels"]["deadletter"]
    assert dead["messages"], "the dead-letter channel carries messages"
    message = catalogue["components"]["messages"]["deadletter.DeadLetter"]
    assert "Studyhall-Deadletter-Reason" in message["headers"]["required"]
    actions = {
        operation["action"]
        for operation in catalogue["operations"].values()
        if operation["channel"] == {"$ref": "#/channels/deadletter"}
    }
    assert actions == {"send", "receive"}


def test_the_vendored_schema_is_the_pinned_official_one() -> None:
    readme = (SCHEMA.parent / "README.md").read_text()
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() in readme
    schema = json.loads(SCHEMA.read_text())
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"


def test_the_check_accepts_the_catalogue_and_refuses_a_broken_one(tmp_path: Path) -> None:
    accepted = validate(CATALOGUE)
    assert accepted.returncode == 0, accepted.stderr

    broken: dict[str, Any] = json.loads(CATALOGUE.read_text())
    # An AsyncAPI 2 verb, a server without its protocol, a payload with an unknown type.
    broken["operations"]["deadletter.park"]["action"] = "publish"
    del broken["servers"]["local"]["protocol"]
    payload = broken["components"]["messages"]["members.MemberJoined"]["payload"]["schema"]
    payload["properties"]["user_id"] = {"type": "text"}
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(broken))
    refused = validate(path)
    assert refused.returncode != 0
    assert "not a valid AsyncAPI 3.0.0 document (3 error(s))" in refused.stderr
    for where in (
        "operations/deadletter.park",
        "servers/local",
        "components/messages/members.MemberJoined",
    ):
        assert where in refused.stderr, refused.stderr
