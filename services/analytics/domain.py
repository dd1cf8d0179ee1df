"""Figures about communities: rules only, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class CommunityStats:
    """A community's figures, as projected from the events applied so far.

    A community no event has reached yet is not an error: its figures are all zero, and
    `updated_at` stays unset so a reader can tell "nothing yet" from "counted zero".
    """

    community_id: str
    member_count: int = 0
    post_count: int = 0
    activity_count: int = 0
    product_count: int = 0
    updated_at: datetime | None = None
