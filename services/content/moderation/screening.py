"""Screening what members write against their community's keyword rules (handed to the
posts and comments APIs by app.py)."""

from __future__ import annotations

from collections.abc import Mapping

from services.content.moderation.domain import refusals
from services.content.moderation.store import RuleRepository
from services.kit.database import Database
from services.kit.validation import Violations


class Screen:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def check(self, community_id: str, fields: Mapping[str, str]) -> None:
        """Refuse (INVALID_ARGUMENT naming each field) a text holding a watched phrase."""
        texts = {name: text for name, text in fields.items() if text}
        if not texts:
            return
        async with self.database.read() as session:
            rules = await RuleRepository(session).all_of(community_id)
        problems = Violations()
        for name, why in refusals(rules, texts).items():
            problems.add(name, why)
        problems.raise_if_any()
