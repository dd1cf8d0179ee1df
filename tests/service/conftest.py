"""Fixtures of the service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from tests.support.services import RunningService, running_service


@pytest.fixture
async def members(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    """The members service on the store under test, with real NATS and Redis."""
    async with running_service(
        MEMBERS,
        MembersSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running
