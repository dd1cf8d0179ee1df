"""Keyword rules: how a watched phrase is told apart in a text. No I/O."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

PHRASE_MAX = 100
# Enough for any community's watch list; a longer list is a job for another tool.
RULES_MAX = 500

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W_]")


class RuleAction(IntEnum):
    # Same numbers as studyhall.content.v1.KeywordRuleAction.
    BLOCK = 1  # the write is refused
    HOLD = 2  # a post is accepted and held for review; a comment is refused


@dataclass(frozen=True)
class KeywordRule:
    id: str
    community_id: str
    phrase: str
    phrase_key: str
    created_by: str
    created_at: datetime
    action: RuleAction = RuleAction.BLOCK


def fold(text: str) -> str:
    """Text as rules compare it: full-width forms and case folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def phrase_problem(phrase: str) -> str | None:
    """Why `phrase` cannot be a rule, or None."""
    if not phrase.strip():
        return "is required"
    if len(phrase) > PHRASE_MAX:
        return f"must be at most {PHRASE_MAX} characters (got {len(phrase)})"
    if not _WORD.search(fold(phrase)):
        return "must hold a letter, a digit or a Chinese character"
    return None


def new_rule(
    community_id: str,
    phrase: str,
    by: str,
    now: datetime,
    action: RuleAction = RuleAction.BLOCK,
) -> KeywordRule:
    return KeywordRule(
        str(uuid.uuid4()), community_id, phrase.strip(), fold(phrase), by, now, action
    )


def _pattern(phrase_key: str) -> re.Pattern[str]:
    # Chinese has no spaces between words: a Chinese phrase matches anywhere. Another phrase
    # matches as whole words, so "ass" does not refuse "class".
    if _CJK.search(phrase_key):
        return re.compile(re.escape(phrase_key))
    return re.compile(rf"(?<![^\W_]){re.escape(phrase_key)}(?![^\W_])")


def refusals(rules: Iterable[KeywordRule], fields: Mapping[str, str]) -> dict[str, str]:
    """The fields of `fields` (name: text) that hold a rule's phrase, with why."""
    return {
        name: f"holds {rule.phrase!r}, which this community does not allow"
        for name, rule in matches(rules, fields).items()
    }


def hold_reason(rules: Iterable[KeywordRule], fields: Mapping[str, str]) -> str | None:
    """Why a text is held for review: the first rule that holds and matches it, or None."""
    holding = [rule for rule in rules if rule.action is RuleAction.HOLD]
    for rule in matches(holding, fields).values():
        return f"keyword rule {rule.phrase!r}"
    return None


def matches(rules: Iterable[KeywordRule], fields: Mapping[str, str]) -> dict[str, KeywordRule]:
    """The fields of `fields` (name: text) that hold a rule's phrase, with the rule."""
    patterns = [(rule, _pattern(rule.phrase_key)) for rule in rules]
    found: dict[str, KeywordRule] = {}
    for name, text in fields.items():
        folded = fold(text)
        for rule, pattern in patterns:
            if pattern.search(folded):
                found[name] = rule
                break
    return found
