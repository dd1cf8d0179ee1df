"""What `studyhall analytics rebuild` prints, for people and with --json for scripts."""

from __future__ import annotations

import json

import pytest

from services.analytics.rebuild import Report

pytestmark = pytest.mark.unit


def test_a_rebuild_that_differs_says_where_in_text_and_in_json() -> None:
    report = Report(
        sequences={"members": 12},
        events=12,
        compared_rows=40,
        differences={"daily_stats": ["day 2026-12-01: joins 3 != 2"]},
    )
    assert report.as_text(compared=True).splitlines() == [
        "  members up to sequence 12",
        "DIFFERENT daily_stats:",
        "    day 2026-12-01: joins 3 != 2",
    ]
    shown = json.loads(report.as_json("sqlite+aiosqlite:///x.db", compared=True))
    assert (shown["matches"], shown["compared_rows"], shown["sequences"]) == (
        False,
        40,
        {"members": 12},
    )
    assert shown["differences"] == {"daily_stats": ["day 2026-12-01: joins 3 != 2"]}


def test_a_rebuild_that_matches_or_was_not_compared_says_so() -> None:
    report = Report(sequences={"members": 3}, compared_rows=7)
    assert report.as_text(compared=True).endswith("matches the live one (7 rows)")
    assert json.loads(report.as_json("x", compared=True))["matches"] is True
    assert json.loads(report.as_json("x", compared=False))["matches"] is False
    assert "matches" not in report.as_text(compared=False)
