"""Streak rules with explicit days and times: local days in a member's time zone, grace days
that bridge gaps, and what "today" means on either side of UTC midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.kit.errors import AlreadyExists, InvalidArgument
from services.members.checkins.domain import (
    Settings,
    Streak,
    alive_after,
    check_in,
    current_days,
    day_zone,
    local_day,
    new_settings,
)

SHANGHAI = "Asia/Shanghai"  # UTC+8, no daylight saving
NEW_YORK = "America/New_York"


def walk(times: list[datetime], zone: str, grace: int) -> list[Streak]:
    streak: Streak | None = None
    seen = []
    for moment in times:
        _, streak = check_in("c", "u", streak, note="", zone=zone, grace_days=grace, now=moment)
        seen.append(streak)
    return seen


def test_the_day_is_the_members_local_day() -> None:
    # 20:30 UTC on 1 March is already 2 March in Shanghai, still 1 March in New York.
    moment = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)
    assert local_day(moment, SHANGHAI) == date(2026, 3, 2)
    assert local_day(moment, NEW_YORK) == date(2026, 3, 1)
    assert day_zone("", "") == "UTC"
    assert day_zone("", NEW_YORK) == NEW_YORK
    assert day_zone(SHANGHAI, NEW_YORK) == SHANGHAI


def test_consecutive_local_days_build_a_streak_across_utc_dates() -> None:
    # 17:00 UTC is 01:00 the next day in Shanghai; 15:00 UTC is 23:00 the same day.
    times = [
        datetime(2026, 3, 1, 15, 0, tzinfo=UTC),  # 1 March, 23:00 local
        datetime(2026, 3, 1, 17, 0, tzinfo=UTC),  # 2 March, 01:00 local: next day
        datetime(2026, 3, 3, 10, 0, tzinfo=UTC),  # 3 March, 18:00 local
    ]
    streaks = walk(times, SHANGHAI, grace=0)
    assert [s.current for s in streaks] == [1, 2, 3]
    assert [s.last_date for s in streaks] == [date(2026, 3, d) for d in (1, 2, 3)]
    assert streaks[-1].longest == 3


def test_a_second_check_in_the_same_local_day_is_refused_naming_the_day() -> None:
    first = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 March in Shanghai
    [streak] = walk([first], SHANGHAI, grace=0)
    later = datetime(2026, 3, 2, 15, 59, tzinfo=UTC)  # 23:59 on 2 March
    with pytest.raises(AlreadyExists) as refused:
        check_in("c", "u", streak, note="", zone=SHANGHAI, grace_days=0, now=later)
    assert "2026-03-02" in refused.value.message


def test_a_missed_day_breaks_the_streak_without_grace() -> None:
    day = timedelta(days=1)
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    streaks = walk([start, start + day, start + 3 * day], SHANGHAI, grace=0)
    assert [s.current for s in streaks] == [1, 2, 1]
    assert streaks[-1].longest == 2


@pytest.mark.parametrize(("grace", "gap", "continues"), [(1, 1, True), (1, 2, False), (3, 3, True)])
def test_grace_days_bridge_that_many_missed_days(grace: int, gap: int, continues: bool) -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    after_gap = start + timedelta(days=gap + 1)
    streaks = walk([start, after_gap], SHANGHAI, grace=grace)
    assert streaks[-1].current == (2 if continues else 1)


def test_the_current_streak_lives_through_today_and_the_grace_days() -> None:
    streak = walk([datetime(2026, 3, 1, 12, tzinfo=UTC)], SHANGHAI, grace=0)[0]
    assert current_days(streak, date(2026, 3, 1), grace_days=0) == 1  # done today
    assert current_days(streak, date(2026, 3, 2), grace_days=0) == 1  # still time today
    assert current_days(streak, date(2026, 3, 3), grace_days=0) == 0  # 2 March was missed
    assert current_days(streak, date(2026, 3, 4), grace_days=2) == 1
    assert current_days(None, date(2026, 3, 4), grace_days=2) == 0


def test_the_stored_day_boundary_tells_running_streaks_from_broken_ones() -> None:
    # Check-in on 1 March in Shanghai: 2 March begins at 16:00 UTC on 1 March.
    streak = walk([datetime(2026, 3, 1, 3, tzinfo=UTC)], SHANGHAI, grace=1)[0]
    assert streak.next_day_start == datetime(2026, 3, 1, 16, tzinfo=UTC)
    # With one grace day it runs until 3 March ends locally: 16:00 UTC on 3 March.
    running = datetime(2026, 3, 3, 15, 59, tzinfo=UTC)
    broken = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)
    assert streak.next_day_start > alive_after(running, grace_days=1)
    assert not streak.next_day_start > alive_after(broken, grace_days=1)
    assert current_days(streak, local_day(running, SHANGHAI), 1) == 1
    assert current_days(streak, local_day(broken, SHANGHAI), 1) == 0


def test_moving_to_a_zone_behind_does_not_allow_a_second_check_in() -> None:
    streak = walk([datetime(2026, 3, 1, 20, tzinfo=UTC)], SHANGHAI, grace=0)[0]  # 2 March
    with pytest.raises(AlreadyExists) as refused:
        check_in(
            "c",
            "u",
            streak,
            note="",
            zone=NEW_YORK,
            grace_days=0,
            now=datetime(2026, 3, 2, 3, tzinfo=UTC),  # 1 March, 22:00 in New York
        )
    assert "2026-03-02" in refused.value.message


def test_grace_is_zero_to_three_days() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert new_settings(Settings("c"), 3, now).grace_days == 3
    with pytest.raises(InvalidArgument) as refused:
        new_settings(Settings("c"), 4, now)
    assert [v.field for v in refused.value.violations] == ["grace_days"]
