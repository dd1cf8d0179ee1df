"""A time zone name a caller sent is a zone or "no such zone", never an error: names too long
for a file path, with a NUL byte or climbing out of the zone directory included."""

from __future__ import annotations

import pytest

from services.content.calendar.domain import zone as content_zone
from services.events.activities.domain import zone as events_zone
from services.members.care.domain import zone_of
from services.members.communities.domain import is_time_zone

BAD_NAMES = ["😀" * 64, "Europe/" + "x" * 300, "Europe/Paris\x00", "../../etc/passwd", "Mars/Base"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_is_no_zone_is_refused_quietly(name: str) -> None:
    assert content_zone(name) is None
    assert events_zone(name) is None
    assert not is_time_zone(name)
    assert str(zone_of(name, "")) == "UTC"


def test_a_real_zone_is_found() -> None:
    assert str(content_zone("Asia/Shanghai")) == "Asia/Shanghai"
    assert str(events_zone("Europe/Paris")) == "Europe/Paris"
    assert is_time_zone("America/New_York")
