"""CloudEvents binary mode on NATS headers: every event says its data content type, and a
reader takes header names in any case, as other producers may write them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.kit.events.envelope import Envelope, PoisonMessage

pytestmark = pytest.mark.unit

ENVELOPE = Envelope(
    id="6f1c1f7e-9a51-4d4e-9f3a-2f0f3b1f8a10",
    source="/studyhall/members",
    type="studyhall.members.v1.MemberJoined",
    time=datetime(2026, 12, 4, 9, 30, tzinfo=UTC),
    subject="communities/c1",
    community_id="c1",
    data=b"\x0a\x02c1",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)


def test_every_event_says_its_data_content_type() -> None:
    headers = ENVELOPE.headers()
    assert headers["ce-datacontenttype"] == headers["content-type"] == "application/protobuf"
    assert Envelope.from_headers(headers, ENVELOPE.data) == ENVELOPE


def test_header_names_are_read_in_any_case() -> None:
    shouted = {name.upper(): value for name, value in ENVELOPE.headers().items()}
    capitalized = {name.title(): value for name, value in ENVELOPE.headers().items()}
    assert Envelope.from_headers(shouted, ENVELOPE.data) == ENVELOPE
    assert Envelope.from_headers(capitalized, ENVELOPE.data) == ENVELOPE


@pytest.mark.parametrize("name", ["ce-datacontenttype", "content-type"])
def test_another_data_content_type_is_refused(name: str) -> None:
    headers = {**ENVELOPE.headers(), name: "application/json"}
    with pytest.raises(PoisonMessage, match=name):
        Envelope.from_headers(headers, ENVELOPE.data)
