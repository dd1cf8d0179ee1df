from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from services.kit.auth import LocalSigner, TokenVerifier
from services.kit.database import Database
from services.kit.server import GrpcServer, Lifecycle
from tests.support.notes_service import SERVICE, NotesService, RunningNotes, metadata
from tests.support.services import free_port, wait_until_serving


@asynccontextmanager
async def running_notes(
    database_url: str,
    data_dir: Path,
    *,
    start_failures: int = 0,
    ready: Callable[[Database], Awaitable[bool]] | None = None,
    readiness_interval: float = 0.1,
    wait: bool = True,
    verifier: TokenVerifier | None = None,
) -> AsyncIterator[RunningNotes]:
    """The notes service on a free port; `start_failures` makes its start-up fail that often."""
    signer = LocalSigner.ensure(data_dir)
    database = Database(database_url)
    service = NotesService(database)
    failures_left = start_failures

    async def start() -> None:
        nonlocal failures_left
        if failures_left > 0:
            failures_left -= 1
            raise ConnectionError("database not reachable yet")
        async with database.writer.begin() as connection:
            await connection.run_sync(metadata.create_all)

    async def is_ready() -> bool:
        return await (ready(database) if ready else database.ping())

    lifecycle = Lifecycle(
        register=service.register,
        service_names=[SERVICE],
        start=start,
        ready=is_ready,
        stop=database.close,
        readiness_interval=readiness_interval,
        start_backoff_max=0.2,
    )
    verifier = verifier or TokenVerifier(
        issuer=signer.issuer,
        audience=signer.audience,
        algorithms=["ES256"],
        key_file=data_dir / "keys" / "signing.jwks.json",
    )
    server = GrpcServer(
        "notes", lifecycle, verifier, host="127.0.0.1", port=free_port(), grace_seconds=5
    )
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        if wait:
            await wait_until_serving(channel)
        yield RunningNotes(service, server, channel, signer, data_dir)
    finally:
        await channel.close()
        await server.shutdown()
