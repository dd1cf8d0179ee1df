"""Setting up who may do what in a service's projection of members' roles, as its consumer
would from members' events (tests that need the real path go through members and NATS)."""

from __future__ import annotations

from typing import Any

from services.kit.access import PRIVATE, Role
from services.kit.projection import upsert_newer
from tests.support.services import RunningService

PUBLIC = 1


async def grant(
    running: RunningService,
    community_id: str,
    user_id: str,
    role: Role = Role.MEMBER,
    *,
    visibility: int = PUBLIC,
    version: int = 1,
) -> None:
    """Make `user_id` hold `role` in `community_id` (creating the community if unknown)."""
    tables = _tables(running)
    community = {"community_id": community_id, "visibility": visibility, "version": 1}
    standing = {
        "community_id": community_id,
        "user_id": user_id,
        "role": int(role),
        "active": True,
        "version": version,
    }
    async with running.deps.database.write() as session:
        await upsert_newer(session, tables.communities, [community], ["community_id"])
        await upsert_newer(session, tables.roles, [standing], ["community_id", "user_id"])
    # The service may have cached the caller's previous standing for a moment.
    key = f"studyhall:{running.server.name}:standing:{community_id}:{user_id}"
    await running.deps.redis.call(lambda client: client.delete(key), None)


async def known_community(
    running: RunningService, community_id: str, *, private: bool = False
) -> None:
    """Make the community known with nobody in it."""
    community = {
        "community_id": community_id,
        "visibility": PRIVATE if private else PUBLIC,
        "version": 1,
    }
    async with running.deps.database.write() as session:
        await upsert_newer(session, _tables(running).communities, [community], ["community_id"])


def _tables(running: RunningService) -> Any:
    module = __import__(f"services.{running.server.name}.store.tables", fromlist=["access"])
    return module.access
