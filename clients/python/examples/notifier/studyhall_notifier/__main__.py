"""`python -m studyhall_notifier`: run the notifier until SIGTERM.

Settings (environment):
- STUDYHALL_NATS_URL       the NATS server, default nats://127.0.0.1:14222 (`make up`)
- NOTIFIER_WEBHOOK_URL     where to POST (required)
- NOTIFIER_SECRET          the shared HMAC secret (required)
- NOTIFIER_SENT_DB         SQLite file of the events sent, default notifier-sent.db
- NOTIFIER_DURABLE         the JetStream consumer name, default notifier
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import aiohttp
from faststream import FastStream
from faststream.nats import NatsBroker

from studyhall_notifier.delivery import WebhookSender
from studyhall_notifier.notifier import Notifier, attach
from studyhall_notifier.sent import SentLog


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"studyhall-notifier: set {name}")
    return value


async def run() -> None:
    url = _required("NOTIFIER_WEBHOOK_URL")
    secret = _required("NOTIFIER_SECRET").encode()
    broker = NatsBroker(os.environ.get("STUDYHALL_NATS_URL", "nats://127.0.0.1:14222"))
    sent = SentLog(os.environ.get("NOTIFIER_SENT_DB", "notifier-sent.db"))
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(WebhookSender(session, url, secret), sent)
        attach(broker, notifier, durable=os.environ.get("NOTIFIER_DURABLE", "notifier"))
        try:
            await FastStream(broker).run()
        finally:
            sent.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run())


if __name__ == "__main__":
    main()
