from __future__ import annotations

import pytest

from services.kit.errors import InvalidArgument
from services.kit.validation import Violations
from services.members.communities.domain import slugify

pytestmark = pytest.mark.unit


def test_every_problem_is_reported_at_once() -> None:
    problems = Violations()
    problems.text("name", "")
    problems.text("topic", "x" * 81, max_length=80)
    problems.uuid("community_id", "not-a-uuid")
    problems.tags("tags", ["ok", "NOT OK"])
    with pytest.raises(InvalidArgument) as caught:
        problems.raise_if_any()
    fields = [violation.field for violation in caught.value.violations]
    assert fields == ["name", "topic", "community_id", "tags[1]"]


def test_no_problems_means_no_error() -> None:
    problems = Violations()
    problems.text("name", "Python study group")
    problems.uuid("community_id", "0b6f3f4e-8c1e-4a53-9a43-8c7e43c1b2aa")
    problems.tags("tags", ["python", "初学者"])
    problems.raise_if_any()


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Python Study Group", "python-study-group"),
        ("  IELTS -- 7.5+  ", "ielts-7-5"),
        ("Café Français", "cafe-francais"),
        ("每日英语", "fallback"),
    ],
)
def test_slug_is_derived_from_the_name(name: str, slug: str) -> None:
    assert slugify(name, fallback="fallback") == slug
