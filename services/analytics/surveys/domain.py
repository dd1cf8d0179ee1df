"""Surveys: what a valid survey and a valid answer are, and what the answers add up to.
Rules only, no I/O (docs/decisions/0048-surveys-are-records-analytics-owns.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from services.kit.errors import NotFound
from services.kit.validation import Violations
from studyhall.analytics.v1 import analytics_service_pb2 as pb

RATING = int(pb.QUESTION_KIND_RATING)
SINGLE = int(pb.QUESTION_KIND_SINGLE_CHOICE)
MULTIPLE = int(pb.QUESTION_KIND_MULTIPLE_CHOICE)
FREE_TEXT = int(pb.QUESTION_KIND_FREE_TEXT)
NPS = int(pb.QUESTION_KIND_NPS)
KINDS = (RATING, SINGLE, MULTIPLE, FREE_TEXT, NPS)
CHOICE_KINDS = (SINGLE, MULTIPLE)
# The scores each scored kind allows, lowest and highest.
SCALES: dict[int, tuple[int, int]] = {RATING: (1, 5), NPS: (0, 10)}

MAX_QUESTIONS = 50
MAX_CHOICES = 20
MAX_TEXT = 2_000
# Free text answers a result shows, newest first.
MAX_TEXTS = 100
_KEY = re.compile(r"[a-z0-9_]{1,40}")


@dataclass(frozen=True)
class Question:
    key: str
    kind: int
    prompt: str
    choices: tuple[str, ...] = ()
    required: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "prompt": self.prompt,
            "choices": list(self.choices),
            "required": self.required,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Question:
        return cls(
            raw["key"], int(raw["kind"]), raw["prompt"], tuple(raw["choices"]), raw["required"]
        )


@dataclass(frozen=True)
class Survey:
    id: str
    community_id: str
    title: str
    questions: tuple[Question, ...]
    segment_id: str
    recipient_count: int
    created_by: str
    created_at: datetime
    closed_at: datetime | None
    answer_count: int
    version: int

    @property
    def open(self) -> bool:
        return self.closed_at is None


def survey_not_found(survey_id: str, community_id: str) -> NotFound:
    return NotFound(f"survey {survey_id} not found in community {community_id}")


def questions_of(title: str, asked: Sequence[pb.SurveyQuestion]) -> tuple[Question, ...]:
    """The questions of a new survey, every problem named by its field."""
    problems = Violations()
    problems.text("title", title)
    if not asked:
        problems.add("questions", "a survey needs at least one question")
    elif len(asked) > MAX_QUESTIONS:
        problems.add("questions", f"must have at most {MAX_QUESTIONS} questions")
    keys: set[str] = set()
    made: list[Question] = []
    for index, question in enumerate(asked[:MAX_QUESTIONS]):
        where = f"questions[{index}]"
        if not _KEY.fullmatch(question.key):
            problems.add(f"{where}.key", "must be 1-40 lowercase letters, digits or '_'")
        elif question.key in keys:
            problems.add(f"{where}.key", f"{question.key!r} is the key of an earlier question")
        keys.add(question.key)
        problems.enum(f"{where}.kind", question.kind, KINDS, "QuestionKind", required=True)
        problems.text(f"{where}.prompt", question.prompt, max_length=500)
        choices = list(question.choices)
        if question.kind in CHOICE_KINDS:
            if not 2 <= len(choices) <= MAX_CHOICES:
                problems.add(f"{where}.choices", f"needs 2-{MAX_CHOICES} choices")
            if len(set(choices)) != len(choices):
                problems.add(f"{where}.choices", "must be distinct")
            for n, label in enumerate(choices):
                problems.text(f"{where}.choices[{n}]", label)
        elif choices:
            problems.add(
                f"{where}.choices", "only single and multiple choice questions have choices"
            )
        made.append(
            Question(
                question.key,
                int(question.kind),
                question.prompt,
                tuple(choices),
                question.required,
            )
        )
    problems.raise_if_any()
    return tuple(made)


def answers_of(survey: Survey, given: Sequence[pb.SurveyAnswer]) -> dict[str, dict[str, Any]]:
    """A member's answers as stored (by question key), or INVALID_ARGUMENT naming each
    answer outside its question's scale or choices, and each required question left out."""
    problems = Violations()
    by_key = {question.key: question for question in survey.questions}
    answers: dict[str, dict[str, Any]] = {}
    if not given:
        problems.add("answers", "answer at least one question")
    for index, answer in enumerate(given):
        where = f"answers[{index}]"
        question = by_key.get(answer.key)
        if question is None:
            problems.add(f"{where}.key", f"the survey has no question {answer.key!r:.60}")
            continue
        if answer.key in answers:
            problems.add(f"{where}.key", f"question {answer.key!r} is answered twice")
            continue
        answers[answer.key] = _answer(problems, where, question, answer)
    for question in survey.questions:
        if question.required and question.key not in answers:
            problems.add("answers", f"question {question.key!r} is required")
    problems.raise_if_any()
    return answers


def _answer(
    problems: Violations, where: str, question: Question, answer: pb.SurveyAnswer
) -> dict[str, Any]:
    scored = answer.HasField("score")
    if question.kind in SCALES:
        least, most = SCALES[question.kind]
        if not scored:
            problems.add(f"{where}.score", f"is required for this question ({least}-{most})")
        elif not least <= answer.score <= most:
            problems.add(f"{where}.score", f"must be {least}-{most}, got {answer.score}")
        if answer.choices or answer.text:
            problems.add(where, "a scored question takes a score only")
        return {"score": answer.score}
    if scored:
        problems.add(f"{where}.score", "only rating and NPS questions take a score")
    if question.kind == FREE_TEXT:
        problems.text(f"{where}.text", answer.text, max_length=MAX_TEXT)
        if answer.choices:
            problems.add(f"{where}.choices", "a free text question takes text only")
        return {"text": answer.text}
    chosen = list(answer.choices)
    if answer.text:
        problems.add(f"{where}.text", "a choice question takes choices only")
    if not chosen:
        problems.add(f"{where}.choices", "choose at least one")
    elif question.kind == SINGLE and len(chosen) > 1:
        problems.add(f"{where}.choices", "choose exactly one")
    if len(set(chosen)) != len(chosen):
        problems.add(f"{where}.choices", "must be distinct")
    for n, label in enumerate(chosen):
        if label not in question.choices:
            problems.add(f"{where}.choices[{n}]", f"{label!r:.60} is not one of the choices")
    return {"choices": chosen}


# -- results ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the answers to one question add up to."""

    question: Question
    answered: int = 0
    scores: list[int] = field(default_factory=list)
    choices: dict[str, int] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)

    def result(self) -> pb.QuestionResult:
        q = self.question
        out = pb.QuestionResult(key=q.key, kind=q.kind, answered=self.answered)  # type: ignore[arg-type]
        if q.kind in SCALES:
            _, most = SCALES[q.kind]
            counts = [0] * (most + 1)
            for score in self.scores:
                counts[score] += 1
            out.score_counts.extend(counts)
            out.mean_score = mean(self.scores)
        if q.kind == NPS:
            out.promoters, out.passives, out.detractors = nps_groups(self.scores)
            out.nps = nps(self.scores)
        for label in q.choices:
            n = self.choices.get(label, 0)
            out.choices.add(label=label, count=n, share=ratio(n, self.answered))
        out.texts.extend(self.texts[:MAX_TEXTS])
        return out


def tally(
    questions: Sequence[Question], answered: Iterable[dict[str, dict[str, Any]]]
) -> list[Tally]:
    """`answered`: each respondent's answers, newest first."""
    tallies = {question.key: Tally(question) for question in questions}
    for answers in answered:
        for key, answer in answers.items():
            t = tallies.get(key)
            if t is None:
                continue
            t.answered += 1
            if "score" in answer:
                t.scores.append(int(answer["score"]))
            for label in answer.get("choices", ()):
                t.choices[label] = t.choices.get(label, 0) + 1
            if answer.get("text"):
                t.texts.append(answer["text"])
    return [tallies[question.key] for question in questions]


def nps_groups(scores: Sequence[int]) -> tuple[int, int, int]:
    promoters = sum(1 for s in scores if s >= 9)
    passives = sum(1 for s in scores if 7 <= s <= 8)
    return promoters, passives, len(scores) - promoters - passives


def nps(scores: Sequence[int]) -> float:
    """Promoters' share less detractors', in points (-100 to 100); 0 with no answers."""
    if not scores:
        return 0.0
    promoters, _, detractors = nps_groups(scores)
    return round(100 * (promoters - detractors) / len(scores), 2)


def mean(values: Sequence[int]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


# -- the satisfaction trend -------------------------------------------------------------------


@dataclass
class Week:
    start: date
    ratings: list[int] = field(default_factory=list)  # survey ratings, 1-5
    feedback: list[int] = field(default_factory=list)  # activities' overall ratings, 1-5
    nps: list[int] = field(default_factory=list)  # NPS answers, 0-10

    def satisfaction(self) -> float:
        """Every answer on one 0-100 scale: a rating r (1-5) is (r - 1) * 25, an NPS score s
        (0-10) is s * 10; the mean of them all (docs/metrics.md)."""
        points = [(r - 1) * 25 for r in self.ratings + self.feedback]
        points += [s * 10 for s in self.nps]
        return round(sum(points) / len(points), 2) if points else 0.0

    def message(self) -> pb.SatisfactionWeek:
        return pb.SatisfactionWeek(
            week_start=self.start.isoformat(),
            ratings=len(self.ratings),
            mean_rating=mean(self.ratings),
            feedback=len(self.feedback),
            mean_feedback=mean(self.feedback),
            nps_answers=len(self.nps),
            nps=nps(self.nps),
            satisfaction=self.satisfaction(),
        )


def week_of(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def trend(
    answers: Iterable[tuple[datetime, Sequence[Question], dict[str, dict[str, Any]]]],
    feedback: Iterable[tuple[datetime, int]],
) -> list[Week]:
    """Weeks with anything to say, oldest first: survey answers (when answered, the
    survey's questions, the answers) and activity feedback (when, overall rating)."""
    weeks: dict[date, Week] = {}

    def week(at: datetime) -> Week:
        start = week_of(at.date())
        return weeks.setdefault(start, Week(start))

    for at, questions, given in answers:
        kinds = {question.key: question.kind for question in questions}
        for key, answer in given.items():
            if "score" not in answer:
                continue
            if kinds.get(key) == RATING:
                week(at).ratings.append(int(answer["score"]))
            elif kinds.get(key) == NPS:
                week(at).nps.append(int(answer["score"]))
    for at, rating in feedback:
        if 1 <= rating <= 5:
            week(at).feedback.append(rating)
    return [weeks[start] for start in sorted(weeks)]
