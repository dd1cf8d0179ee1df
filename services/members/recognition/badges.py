"""Badges: rules over a member's ledger and activity, each earned once. Pure rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """What a member has done in a community, as far as badges care."""

    posts: int = 0
    checkins: int = 0
    kudos_received: int = 0
    points_total: int = 0
    streak_days: int = 0
    paths: int = 0
    challenges: int = 0

    @classmethod
    def of(cls, entries: Mapping[str, int], points_total: int, streak_days: int) -> Progress:
        """From how many ledger entries of each reason the member has (COUNTED_REASONS)."""
        return cls(
            posts=entries.get("post_created", 0),
            checkins=entries.get("checked_in", 0),
            kudos_received=entries.get("kudos", 0),
            points_total=points_total,
            streak_days=streak_days,
            paths=entries.get("path_completed", 0),
            challenges=entries.get("challenge_completed", 0),
        )


# The ledger reasons whose entries Progress counts.
COUNTED_REASONS = ("post_created", "checked_in", "kudos", "path_completed", "challenge_completed")


CATALOGUE: dict[str, Callable[[Progress], bool]] = {
    "first_post": lambda p: p.posts >= 1,
    "posts_10": lambda p: p.posts >= 10,
    "checkins_7": lambda p: p.checkins >= 7,
    "streak_30": lambda p: p.streak_days >= 30,
    "points_100": lambda p: p.points_total >= 100,
    "helper": lambda p: p.kudos_received >= 10,
    "path_finisher": lambda p: p.paths >= 1,
    "challenge_finisher": lambda p: p.challenges >= 1,
}


def earned(progress: Progress) -> list[str]:
    """Every badge `progress` qualifies for, in catalogue order."""
    return [code for code, rule in CATALOGUE.items() if rule(progress)]
