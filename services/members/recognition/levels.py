"""Levels: thresholds of points and the privileges each level unlocks. Pure rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.kit.errors import InvalidArgument

DEFAULT_THRESHOLDS = (0, 5, 20, 65, 155, 515, 2015, 8015, 33015)
MAX_LEVELS = 20
# What a community may assign to a level. A privilege no level unlocks is not gated at all.
PRIVILEGES = ("create_activities", "post_links", "create_invites", "give_kudos")


@dataclass(frozen=True)
class Level:
    number: int
    min_points: int
    privileges: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ladder:
    levels: tuple[Level, ...]
    # Grows with every SetLevels; 0 for the default ladder.
    version: int = 0

    def level_for(self, points: int) -> int:
        reached = 1
        for level in self.levels:
            if points >= level.min_points:
                reached = level.number
        return reached

    def next_threshold(self, points: int) -> int:
        """Points of the next level up; 0 at the top."""
        for level in self.levels:
            if level.min_points > points:
                return level.min_points
        return 0

    def privileges_at(self, level: int) -> list[str]:
        held: list[str] = []
        for step in self.levels:
            if step.number <= level:
                held.extend(name for name in step.privileges if name not in held)
        return held

    def gates(self, privilege: str) -> bool:
        return any(privilege in level.privileges for level in self.levels)

    def holds(self, level: int, privilege: str) -> bool:
        return not self.gates(privilege) or privilege in self.privileges_at(level)


def default_ladder() -> Ladder:
    return Ladder(
        tuple(Level(number, points) for number, points in enumerate(DEFAULT_THRESHOLDS, 1))
    )


def ladder_of(steps: Sequence[tuple[int, Sequence[str]]]) -> Ladder:
    """A community's ladder from (min_points, privileges) in order; refuses a bad one."""
    problems: list[str] = []
    if not 1 <= len(steps) <= MAX_LEVELS:
        problems.append(f"give 1 to {MAX_LEVELS} levels (got {len(steps)})")
    elif steps[0][0] != 0:
        problems.append("the first level starts at 0 points")
    for index in range(1, len(steps)):
        if steps[index][0] <= steps[index - 1][0]:
            problems.append(
                f"levels[{index}].min_points must be above levels[{index - 1}].min_points"
            )
    for index, (_points, privileges) in enumerate(steps):
        unknown = sorted(set(privileges) - set(PRIVILEGES))
        if unknown:
            problems.append(
                f"levels[{index}].privileges: unknown {', '.join(unknown)}; "
                f"choose from {', '.join(PRIVILEGES)}"
            )
    if problems:
        raise InvalidArgument.field("levels", "; ".join(problems))
    return Ladder(
        tuple(
            Level(number, points, tuple(dict.fromkeys(privileges)))
            for number, (points, privileges) in enumerate(steps, 1)
        )
    )
