"""Recorded Studyhall messages and a stand-in for a JetStream message that remembers how it
was settled (acked, nak'ed with a delay, or terminated)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).with_name("recorded_events.json")


@dataclass
class Metadata:
    num_delivered: int


@dataclass
class FakeMsg:
    subject: str
    headers: dict[str, str] | None
    data: bytes
    delivered: int = 1
    settled: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def metadata(self) -> Metadata:
        return Metadata(self.delivered)

    async def ack(self) -> None:
        self.settled.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append(("nak", delay))

    async def term(self) -> None:
        self.settled.append(("term", None))


def recorded() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(RECORDED.read_text())["records"]
    return records


def recorded_msg(record: dict[str, Any]) -> FakeMsg:
    return FakeMsg(
        subject=record["subject"],
        headers=dict(record["headers"]) or None,
        data=base64.b64decode(record["data"]),
    )
