"""Analytics II's rules without I/O: what an answer may be, how answers add up (NPS,
satisfaction), the engagement score and churn risk, percentiles among peers, and charts
that draw what they are given."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.analytics.benchmarks.domain import MIN_PEERS, Figures, benchmarks, percentile
from services.analytics.engagement import domain as engagement
from services.analytics.reports.charts import bar_chart, line_chart
from services.analytics.surveys import domain as surveys
from services.kit.errors import InvalidArgument
from studyhall.analytics.v1 import analytics_service_pb2 as pb

pytestmark = pytest.mark.unit

NOW = datetime(2030, 1, 7, 9, tzinfo=UTC)
SURVEY = surveys.Survey(
    id="s",
    community_id="c",
    title="t",
    questions=(
        surveys.Question("mood", surveys.RATING, "?", required=True),
        surveys.Question("pick", surveys.SINGLE, "?", ("a", "b")),
        surveys.Question("nps", surveys.NPS, "?"),
    ),
    segment_id="",
    recipient_count=0,
    created_by="olga",
    created_at=NOW,
    closed_at=None,
    answer_count=0,
    version=1,
)


def violations(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def test_an_answer_outside_its_scale_or_choices_names_its_field() -> None:
    with pytest.raises(InvalidArgument) as error:
        surveys.answers_of(
            SURVEY,
            [
                pb.SurveyAnswer(key="mood", score=0),
                pb.SurveyAnswer(key="pick", choices=["a", "b"]),
                pb.SurveyAnswer(key="nps", score=11),
                pb.SurveyAnswer(key="else", text="x"),
            ],
        )
    assert violations(error) == {
        "answers[0].score",
        "answers[1].choices",
        "answers[2].score",
        "answers[3].key",
    }


def test_nps_zero_is_an_answer_and_a_required_question_must_be_answered() -> None:
    given = surveys.answers_of(
        SURVEY, [pb.SurveyAnswer(key="mood", score=1), pb.SurveyAnswer(key="nps", score=0)]
    )
    assert given == {"mood": {"score": 1}, "nps": {"score": 0}}
    with pytest.raises(InvalidArgument) as error:
        surveys.answers_of(SURVEY, [pb.SurveyAnswer(key="nps")])
    assert violations(error) == {"answers[0].score", "answers"}


def test_nps_and_satisfaction_put_every_answer_on_one_scale() -> None:
    assert surveys.nps([10, 9, 8, 7, 0]) == 20.0
    assert surveys.nps([]) == 0.0
    week = surveys.Week(date(2030, 1, 7), ratings=[5], feedback=[1], nps=[5])
    assert week.satisfaction() == 50.0  # (100 + 0 + 50) / 3


def test_the_trend_groups_answers_and_feedback_by_monday() -> None:
    sunday = datetime(2030, 1, 13, 23, tzinfo=UTC)
    weeks = surveys.trend(
        [(sunday, SURVEY.questions, {"mood": {"score": 4}, "pick": {"choices": ["a"]}})],
        [(sunday + timedelta(hours=2), 5)],
    )
    assert [(w.start, w.ratings, w.feedback) for w in weeks] == [
        (date(2030, 1, 7), [4], []),
        (date(2030, 1, 14), [], [5]),
    ]


def test_a_day_of_activity_is_worth_half_after_the_half_life() -> None:
    deeds = engagement.worth({"posts": 1})
    day = date(2030, 1, 1)
    assert engagement.score([(day, deeds)], day) == 3.0
    later = day + timedelta(days=engagement.HALF_LIFE_DAYS)
    assert engagement.score([(day, deeds)], later) == 1.5
    assert engagement.score([(day, deeds)], day + timedelta(days=engagement.WINDOW_DAYS)) == 0


def test_churn_risk_needs_a_fall_from_real_engagement() -> None:
    on = date(2030, 3, 1)
    steady = engagement.Engagement("s", 10.0, 10.0, on)
    falling = engagement.Engagement("f", 4.0, 10.0, on - timedelta(days=3))
    lapsed = engagement.Engagement("l", 1.0, 10.0, on - timedelta(days=21))
    never = engagement.Engagement("n", 0.0, 1.0, None)
    assert [m.risk(on) for m in (steady, falling, lapsed, never)] == [
        engagement.NONE,
        engagement.FALLING,
        engagement.LAPSED,
        engagement.NONE,
    ]
    found = engagement.changes(
        [steady, falling, lapsed], {"f": (engagement.FALLING, 3), "s": (engagement.LAPSED, 1)}, on
    )
    assert [(c.engagement.user_id, c.before, c.now, c.version) for c in found] == [
        ("s", engagement.LAPSED, engagement.NONE, 2),
        ("l", engagement.NONE, engagement.LAPSED, 1),
    ]


def test_percentiles_count_ties_half_and_need_ten_peers() -> None:
    assert percentile(5, [1, 5, 9, 9]) == 38  # (1 + 0.5) / 4
    own = Figures(members=10, active=5, active_days=28, posts=10)
    assert benchmarks(own, {str(n): Figures() for n in range(MIN_PEERS - 1)}) == []
    ranked = benchmarks(own, {str(n): Figures() for n in range(MIN_PEERS)})
    assert {metric: rank for metric, _, rank in ranked}["active_share"] == 100


def test_charts_draw_a_bar_per_value_and_a_line_through_the_points() -> None:
    bars = bar_chart("Daily <active>", ["Mon", "Tue", "Wed"], [2, 0, 5])
    assert bars.count('class="bar"') == 3
    assert "Daily &lt;active&gt;" in bars
    assert 'height="0.0"' in bars  # a zero draws no bar
    line = line_chart("Trend", ["a", "b"], [1.0, 3.0])
    assert line.count('class="point"') == 2
    assert 'class="series" d="M' in line
