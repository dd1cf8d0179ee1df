"""Member-care rules: settings validation, days in time zones, streaks at risk, birthdays,
holidays and the ids that make a signal the same fact wherever it is sent from."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.kit.errors import FailedPrecondition
from services.members.care import domain as care
from services.members.care.domain import Holiday, Settings


def test_defaults_are_two_weeks_eight_pm_and_birthdays_on() -> None:
    settings = Settings("c")
    assert (settings.inactive_after_days, settings.streak_reminder_hour) == (14, 20)
    assert settings.birthdays
    assert (settings.holidays, settings.version) == ((), 0)


@pytest.mark.parametrize(
    ("inactive", "hour", "holidays", "fields"),
    [
        (0, 0, [], set()),
        (365, 23, [Holiday("02-29", "Leap day"), Holiday("2027-01-01", "New year")], set()),
        (366, 20, [], {"inactive_after_days"}),
        (-1, 24, [], {"inactive_after_days", "streak_reminder_hour"}),
        (
            14,
            20,
            [Holiday("02-30", "x"), Holiday("2027-1-1", "y")],
            {"holidays[0].date", "holidays[1].date"},
        ),
        (
            14,
            20,
            [Holiday("12-25", ""), Holiday("12-24", "n" * 81)],
            {"holidays[0].name", "holidays[1].name"},
        ),
        (14, 20, [Holiday("12-25", "x")] * 51, {"holidays"}),
    ],
)
def test_settings_problems_name_each_field(
    inactive: int, hour: int, holidays: list[Holiday], fields: set[str]
) -> None:
    assert {field for field, _ in care.settings_problems(inactive, hour, holidays)} == fields


def test_settings_change_only_from_the_version_read() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    first = care.new_settings(Settings("c"), Settings("other", inactive_after_days=7), 0, now)
    assert (first.community_id, first.inactive_after_days, first.version) == ("c", 7, 1)
    with pytest.raises(FailedPrecondition) as refused:
        care.new_settings(first, Settings("c", inactive_after_days=3), 0, now)
    assert "changed since you read them" in refused.value.message


def test_signal_ids_are_derived_from_community_member_kind_and_day() -> None:
    day = date(2026, 3, 1)
    same = care.signal_id("c", "ana", care.GREETING, day)
    assert same == care.signal_id("c", "ana", care.GREETING, day)
    others = {
        care.signal_id("d", "ana", care.GREETING, day),
        care.signal_id("c", "ben", care.GREETING, day),
        care.signal_id("c", "ana", care.STREAK_AT_RISK, day),
        care.signal_id("c", "ana", care.GREETING, date(2026, 3, 2)),
    }
    assert same not in others
    assert len(others) == 4


def test_a_members_zone_comes_before_the_communitys_and_unknown_zones_fall_back() -> None:
    assert str(care.zone_of("Asia/Tokyo", "Europe/Paris")) == "Asia/Tokyo"
    assert str(care.zone_of("", "Europe/Paris")) == "Europe/Paris"
    assert str(care.zone_of("Mars/Olympus", "")) == "UTC"


def test_candidate_days_cover_every_zone() -> None:
    now = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert care.candidate_days(now) == [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]


def test_inactive_days_count_whole_days_from_the_threshold_on() -> None:
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    assert care.inactive_days(datetime(2026, 3, 1, 12, tzinfo=UTC), now, 14) == 14
    assert care.inactive_days(datetime(2026, 3, 1, 12, 1, tzinfo=UTC), now, 14) == 0
    assert care.inactive_days(datetime(2026, 1, 1, tzinfo=UTC), now, 0) == 0


@pytest.mark.parametrize(
    ("last", "hour", "grace", "expected"),
    [
        (date(2026, 3, 1), 20, 0, 5),  # yesterday, reminder hour reached
        (date(2026, 3, 1), 19, 0, 0),  # too early in the member's day
        (date(2026, 3, 2), 22, 0, 0),  # checked in today
        (date(2026, 2, 28), 21, 0, 0),  # already broken
        (date(2026, 2, 28), 21, 1, 5),  # kept alive by a grace day
    ],
)
def test_a_streak_is_at_risk_after_the_reminder_hour_without_a_checkin(
    last: date, hour: int, grace: int, expected: int
) -> None:
    at_risk = care.streak_at_risk(
        current=5,
        last_date=last,
        today=date(2026, 3, 2),
        grace_days=grace,
        local_hour=hour,
        reminder_hour=20,
    )
    assert at_risk == expected


def test_leap_day_birthdays_are_greeted_on_the_28th_in_other_years() -> None:
    assert care.is_birthday(2, 29, date(2027, 2, 28))
    assert not care.is_birthday(2, 29, date(2028, 2, 28))
    assert care.is_birthday(2, 29, date(2028, 2, 29))
    assert (2, 29) in care.birthday_pairs([date(2027, 2, 27), date(2027, 2, 28), date(2027, 3, 1)])


def test_a_dated_holiday_wins_over_a_yearly_one() -> None:
    holidays = (Holiday("05-01", "Labour day"), Holiday("2026-05-01", "Anniversary"))
    assert care.holiday_on(holidays, date(2026, 5, 1)) == holidays[1]
    assert care.holiday_on(holidays, date(2027, 5, 1)) == holidays[0]
    assert care.holiday_on(holidays, date(2027, 5, 2)) is None
