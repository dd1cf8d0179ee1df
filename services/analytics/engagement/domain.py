"""Engagement scores and churn risk: rules only, no I/O
(docs/decisions/0049-engagement-score-and-churn-sweep.md, defined in docs/metrics.md).

A member's score on a day is what they did, weighted by kind, each day's worth halving every
HALF_LIFE_DAYS, over the WINDOW_DAYS up to that day. Their churn risk compares the score
with the same four weeks earlier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from studyhall.analytics.v1 import analytics_service_pb2 as pb

# What each kind of deed (a column of member_days) is worth on the day it happens.
WEIGHTS: Mapping[str, float] = {
    "posts": 3.0,
    "comments": 2.0,
    "reactions": 0.5,
    "checkins": 1.0,
    "registrations": 1.0,
    "attendances": 3.0,
}
HALF_LIFE_DAYS = 14
WINDOW_DAYS = 90
# The score is compared with the score this many days before.
LOOKBACK_DAYS = 28
# Below this a member was never engaged enough for a fall to mean anything.
MIN_SCORE = 2.0
# Falling: the score is at most this share of the one four weeks before.
FALLING_SHARE = 0.5
# Lapsed: nothing for this many days.
LAPSED_DAYS = 21

NONE = pb.CHURN_RISK_NONE
FALLING = pb.CHURN_RISK_FALLING
LAPSED = pb.CHURN_RISK_LAPSED
# Which risk is worse, for the order of the churn-risk list.
SEVERITY = {NONE: 0, FALLING: 1, LAPSED: 2}

Deeds = Mapping[str, int]


@dataclass(frozen=True)
class Engagement:
    user_id: str
    score: float
    previous_score: float
    last_active: date | None

    def risk(self, on: date) -> int:
        if self.previous_score < MIN_SCORE:
            return NONE
        if self.last_active is None or (on - self.last_active).days >= LAPSED_DAYS:
            return LAPSED
        if self.score <= FALLING_SHARE * self.previous_score:
            return FALLING
        return NONE


def worth(deeds: Deeds) -> float:
    return sum(WEIGHTS[kind] * deeds.get(kind, 0) for kind in WEIGHTS)


def score(days: Iterable[tuple[date, float]], on: date) -> float:
    """The score on day `on` of a member's active days, each with its worth (days after `on`
    do not count)."""
    total = 0.0
    for day, value in days:
        age = (on - day).days
        if 0 <= age < WINDOW_DAYS:
            total += value * 0.5 ** (age / HALF_LIFE_DAYS)
    return round(total, 4)


def first_day_read(on: date) -> date:
    """The first day a judgement on `on` needs (the window before the look-back)."""
    return on - timedelta(days=LOOKBACK_DAYS + WINDOW_DAYS - 1)


def engagement(
    members: Iterable[str], days: Mapping[str, list[tuple[date, float]]], on: date
) -> list[Engagement]:
    """`days`: each member's active days and what each was worth (see `worth`)."""
    # Each member's engagement on `on`, highest score first (ties by user id).
    found = []
    for user_id in members:
        active = [entry for entry in days.get(user_id, []) if entry[0] <= on]
        found.append(
            Engagement(
                user_id,
                score(active, on),
                score(active, on - timedelta(days=LOOKBACK_DAYS)),
                max((day for day, _ in active), default=None),
            )
        )
    return sorted(found, key=lambda e: (-e.score, e.user_id))


@dataclass(frozen=True)
class Change:
    """A member's risk judged anew: what it was (NONE when never judged) and is now."""

    engagement: Engagement
    before: int
    now: int
    version: int


def changes(
    judged: Iterable[Engagement], known: Mapping[str, tuple[int, int]], on: date
) -> list[Change]:
    """The members whose risk differs from what the last sweep said (`known`: user ->
    (risk, version)). A member first judged without risk is no change."""
    found = []
    for member in judged:
        risk = member.risk(on)
        before, version = known.get(member.user_id, (NONE, 0))
        if risk != before:
            found.append(Change(member, before, risk, version + 1))
    return found
