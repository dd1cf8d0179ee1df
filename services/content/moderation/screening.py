"""Screening what members write against their community's keyword rules (handed to the
posts and comments APIs by app.py).

A community's rules are kept in this process for a few seconds: every post and comment is
screened, most communities watch no phrase, and reading the rules per write cost a read
transaction on the hot path. A rule added or removed through this process applies here at
once; another replica sees it within RULES_TTL (decision 0041)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from services.content.moderation.domain import KeywordRule, RuleAction, hold_reason, refusals
from services.content.moderation.store import RuleRepository
from services.kit.database import Database
from services.kit.validation import Violations

RULES_TTL = 5.0  # seconds
_KEPT = 10_000  # communities whose rules are kept at most


class Screen:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._rules: dict[str, tuple[float, list[KeywordRule]]] = {}

    async def watches(self, community_id: str) -> bool:
        """Whether the community watches any phrase (so what is written must be screened)."""
        return bool(await self._of(community_id))

    async def check(
        self, community_id: str, fields: Mapping[str, str], *, holds: bool = False
    ) -> None:
        """Refuse (INVALID_ARGUMENT naming each field) a text holding a watched phrase;
        `holds`: the write can be held for review (a post), so rules that hold do not refuse."""
        texts = {name: text for name, text in fields.items() if text}
        if not texts:
            return
        rules = await self._of(community_id)
        if holds:
            rules = [rule for rule in rules if rule.action is RuleAction.BLOCK]
        problems = Violations()
        for name, why in refusals(rules, texts).items():
            problems.add(name, why)
        problems.raise_if_any()

    async def hold_reason(self, community_id: str, fields: Mapping[str, str]) -> str | None:
        """Why the text goes into review (a rule that holds matches it), or None."""
        texts = {name: text for name, text in fields.items() if text}
        if not texts:
            return None
        return hold_reason(await self._of(community_id), texts)

    def forget(self, community_id: str) -> None:
        """The community's rules changed here: read them again at the next write."""
        self._rules.pop(community_id, None)

    async def _of(self, community_id: str) -> list[KeywordRule]:
        now = time.monotonic()
        kept = self._rules.get(community_id)
        if kept is not None and now - kept[0] < RULES_TTL:
            return kept[1]
        async with self.database.read() as session:
            rules = await RuleRepository(session).all_of(community_id)
        if len(self._rules) >= _KEPT:
            self._rules.clear()
        self._rules[community_id] = (now, rules)
        return rules
