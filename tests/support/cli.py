"""The CLI against one service running in this process: typer's runner in a thread, signing
with the service's local key and finding it by address, so each command takes milliseconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from services.cli.main import app
from tests.support.catalogue import Process, serve
from tests.support.services import RunningService


@dataclass
class Served:
    running: RunningService
    data_dir: Path
    service: str


@asynccontextmanager
async def served_on_sqlite(
    process: Process, service: str, directory: Path, redis_url: str, nats_url: str
) -> AsyncIterator[Served]:
    async with serve(
        process,
        database_url=f"sqlite+aiosqlite:///{directory / f'{service}.db'}",
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=directory,
    ) as running:
        yield Served(running, directory, service)


class Cli:
    def __init__(self, served: Served) -> None:
        self.env = {
            "STUDYHALL_DATA_DIR": str(served.data_dir),
            f"STUDYHALL_{served.service.upper()}_ADDRESS": served.running.server.address,
            "COLUMNS": "200",
        }
        self.runner = CliRunner()

    async def __call__(self, *args: str) -> Result:
        def invoke() -> Result:
            return self.runner.invoke(app, list(args), env=self.env, catch_exceptions=False)

        return await asyncio.to_thread(invoke)

    async def ok(self, *args: str) -> str:
        result = await self(*args)
        assert result.exit_code == 0, result.output
        return result.stdout

    async def json(self, *args: str) -> Any:
        return json.loads(await self.ok(*args, "--json"))
