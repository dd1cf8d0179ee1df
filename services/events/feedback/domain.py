"""Feedback on an activity and its summary: ratings, net promoter score. Rules only, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

COMMENT_MAX = 4_000
RETROSPECTIVE_MAX = 10_000
COMMENTS_SHOWN = 200


@dataclass(frozen=True)
class Feedback:
    id: str
    activity_id: str
    community_id: str
    user_id: str | None
    rating: int
    would_recommend: int | None
    comment: str
    submitted_at: datetime
    version: int = 1


def submitted(
    existing: Feedback | None,
    *,
    activity_id: str,
    community_id: str,
    user_id: str,
    rating: int,
    would_recommend: int | None,
    comment: str,
    now: datetime,
) -> Feedback:
    """New feedback, or the member's earlier feedback replaced."""
    if existing is None:
        return Feedback(
            str(uuid.uuid4()),
            activity_id,
            community_id,
            user_id,
            rating,
            would_recommend,
            comment.strip(),
            now,
        )
    return replace(
        existing,
        rating=rating,
        would_recommend=would_recommend,
        comment=comment.strip(),
        submitted_at=now,
        version=existing.version + 1,
    )


def net_promoter_score(answers: Sequence[int]) -> float:
    """% of promoters (9-10) minus % of detractors (0-6); 0 without answers."""
    if not answers:
        return 0.0
    promoters = sum(1 for score in answers if score >= 9)
    detractors = sum(1 for score in answers if score <= 6)
    return round(100.0 * (promoters - detractors) / len(answers), 1)


def average(ratings: Sequence[int]) -> float:
    return round(sum(ratings) / len(ratings), 2) if ratings else 0.0
