"""The sandbox payment provider as the tests run it: a real process
(`python -m services.billing.sandbox`) on a free port, with its own SQLite file, delivering
webhooks to the URL it is given."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.services import free_port

API_KEY = "sk_test_studyhall"
SECRET = "whsec_test_secret"


@dataclass(frozen=True)
class Sandbox:
    url: str
    process: subprocess.Popen[bytes]

    async def post(self, path: str, form: dict[str, str] | None = None) -> Any:
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                self.url + path,
                data=form or {},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as response,
        ):
            return await response.json()

    async def events(self) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as client,
            client.get(
                self.url + "/v1/events", headers={"Authorization": f"Bearer {API_KEY}"}
            ) as response,
        ):
            body = await response.json()
        return list(body["data"])


@contextmanager
def sandbox(data_dir: Path, webhook_url: str, **settings: str) -> Iterator[Sandbox]:
    """A sandbox provider process for the duration of the block."""
    port = free_port()
    env = {
        **os.environ,
        "STUDYHALL_SANDBOX_PORT": str(port),
        "STUDYHALL_SANDBOX_DATA_DIR": str(data_dir),
        "STUDYHALL_SANDBOX_API_KEY": API_KEY,
        "STUDYHALL_SANDBOX_WEBHOOK_URL": webhook_url,
        "STUDYHALL_SANDBOX_WEBHOOK_SECRET": SECRET,
        **{f"STUDYHALL_SANDBOX_{name.upper()}": value for name, value in settings.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.billing.sandbox"], env=env, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield Sandbox(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"the sandbox provider exited: {error}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("the sandbox provider did not answer /healthz")


def signed(
    body: dict[str, Any], *, at: int | None = None, secret: str = SECRET
) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header, as the provider would send them."""
    payload = json.dumps(body).encode()
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return payload, f"t={stamp},v1={digest.hexdigest()}"


async def deliver(webhook_url: str, payload: bytes, signature: str) -> tuple[int, str]:
    """POST a webhook to billing; (status, message)."""
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            webhook_url,
            data=payload,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        ) as response,
    ):
        body = await response.json()
        return response.status, str(body.get("message", ""))


async def wait_ready(webhook_base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as client:
        while True:
            try:
                async with client.get(webhook_base + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("billing's webhook endpoint is not ready")
            await asyncio.sleep(0.05)
