"""The rules of learning paths (prerequisites never circular, completing once) and of
recurring themes (the next occurrence, no backlog), without I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.content.paths import domain as paths
from services.content.themes import domain as themes

NOW = datetime(2027, 3, 24, 12, 0, tzinfo=UTC)  # a Wednesday


def test_a_prerequisite_that_leads_back_to_the_path_is_circular() -> None:
    a, b, c = (f"{digit * 8}-0000-4000-8000-{digit * 12}" for digit in "012")
    graph: dict[str, list[str]] = {a: [], b: [a], c: [b]}
    assert paths.prerequisite_problems(a, [c], graph, "f").endswith(
        "circular: a prerequisite needs this path"
    )
    assert paths.prerequisite_problems(c, [a], graph, "f") == ""
    assert (
        paths.prerequisite_problems(a, [a], graph, "f") == "a path cannot be its own prerequisite"
    )
    assert paths.prerequisite_problems(a, [b, b], graph, "f") == "names a path twice"


def test_the_last_step_completes_a_path_once() -> None:
    steps = paths.new_steps(
        [paths.StepDraft("", 3, "", "Say hi"), paths.StepDraft("", 3, "", "Read the rules")]
    )
    path = paths.Path("p", "c", "Path", "", steps, (), "", "olga", NOW)
    enrollment = paths.enroll(path, "ada", set(), NOW)
    first, finished = paths.complete_step(enrollment, path, steps[1].id, NOW)
    assert not finished
    done, finished = paths.complete_step(first, path, steps[0].id, NOW)
    assert finished
    assert done.completed_at == NOW
    # A step added later leaves the member completed, and completes nothing again.
    grown = replace(path, steps=(*steps, paths.Step("s3", paths.StepKind.CHECK_IN, title="x")))
    again, finished = paths.complete_step(done, grown, "s3", NOW + timedelta(days=1))
    assert not finished
    assert again.completed_at == NOW


def test_the_next_occurrence_is_the_weekday_at_the_local_time_in_the_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    moment, day = themes.next_occurrence(1, "09:00", tokyo, NOW)  # Monday 09:00 in Tokyo
    assert day.isoformat() == "2027-03-29"
    assert moment == datetime(2027, 3, 29, 0, 0, tzinfo=UTC)
    # London's clocks go forward on 28 March 2027: 09:00 is then 08:00 UTC.
    moment, _ = themes.next_occurrence(1, "09:00", ZoneInfo("Europe/London"), NOW)
    assert moment == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)
    # Today's time still ahead is today.
    moment, day = themes.next_occurrence(3, "13:00", ZoneInfo("UTC"), NOW)
    assert (moment, day.isoformat()) == (datetime(2027, 3, 24, 13, 0, tzinfo=UTC), "2027-03-24")


def test_after_weeks_down_the_next_occurrence_is_ahead_not_a_backlog() -> None:
    theme = themes.new_theme(
        community_id="c",
        title="Weekly goals {date}",
        body="?",
        kind=6,
        topic_id=None,
        weekday=1,
        local_time="09:00",
        where=ZoneInfo("UTC"),
        author_user_id="olga",
        now=NOW,
    )
    assert theme.next_local_date == "2027-03-29"
    late = themes.advance(theme, True, "", now=NOW + timedelta(weeks=3))
    assert late.next_local_date == "2027-04-19"
    on_time = themes.advance(theme, True, "", now=NOW + timedelta(days=5))
    assert on_time.next_local_date == "2027-04-05"
    assert themes.filled(theme.title, "2027-03-29") == "Weekly goals 2027-03-29"
