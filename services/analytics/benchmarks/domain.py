"""Peer benchmarks: a community's figures placed among the communities of its topic.
Rules only, no I/O (docs/decisions/0050-peer-benchmarks-and-reports.md, docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Fewer peers than this and a percentile would all but name them: no benchmark.
MIN_PEERS = 10
# The days measured, up to the day asked for.
DAYS = 28
METRICS = ("stickiness", "active_share", "posts_per_active_member", "member_growth")


@dataclass(frozen=True)
class Figures:
    """What a community did in the days measured."""

    members: int = 0  # counted now
    active: int = 0  # members active at least once in the days
    active_days: int = 0  # (member, day) pairs of activity
    posts: int = 0
    joined: int = 0
    left: int = 0

    def metrics(self) -> dict[str, float]:
        start = self.members - (self.joined - self.left)
        return {
            # Mean daily active members over those active in the period.
            "stickiness": _ratio(self.active_days / DAYS, self.active),
            "active_share": _ratio(self.active, self.members),
            "posts_per_active_member": _ratio(self.posts, self.active),
            "member_growth": _ratio(self.joined - self.left, start),
        }


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole > 0 else 0.0


def percentile(value: float, peers: Sequence[float]) -> int:
    """The share of peers below `value`, ties counted half, 0-100."""
    if not peers:
        return 0
    below = sum(1 for p in peers if p < value)
    equal = sum(1 for p in peers if p == value)
    return round(100 * (below + equal / 2) / len(peers))


def benchmarks(own: Figures, peers: Mapping[str, Figures]) -> list[tuple[str, float, int]]:
    """(metric, own value, percentile) for each metric; nothing below MIN_PEERS peers."""
    if len(peers) < MIN_PEERS:
        return []
    mine = own.metrics()
    theirs = [figures.metrics() for figures in peers.values()]
    return [
        (name, mine[name], percentile(mine[name], [t[name] for t in theirs])) for name in METRICS
    ]
