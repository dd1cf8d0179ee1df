"""Learning paths: ordered steps, prerequisites between paths, and a member's progress.
Rules only, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum
from typing import Any

from services.kit.errors import FailedPrecondition, NotFound

TITLE_MAX = 200
DESCRIPTION_MAX = 2_000
STEP_TITLE_MAX = 200
STEPS_MAX = 100
PREREQUISITES_MAX = 20
PRODUCT_ID_MAX = 200
IDLE_DAYS_MAX = 365
# What UpdatePath may change, by field-mask path.
UPDATABLE = ("title", "description", "steps", "prerequisite_path_ids", "required_product_id")


class StepKind(IntEnum):
    POST = 1
    RESOURCE = 2
    CHECK_IN = 3


@dataclass(frozen=True)
class Step:
    id: str
    kind: StepKind
    post_id: str = ""
    title: str = ""
    resource_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": int(self.kind),
            "post_id": self.post_id,
            "title": self.title,
            "resource_id": self.resource_id,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Step:
        return cls(
            str(value["id"]),
            StepKind(int(value["kind"])),
            str(value.get("post_id", "")),
            str(value.get("title", "")),
            str(value.get("resource_id", "")),
        )


@dataclass(frozen=True)
class Path:
    id: str
    community_id: str
    title: str
    description: str
    steps: tuple[Step, ...]
    prerequisites: tuple[str, ...]
    required_product_id: str
    created_by: str
    created_at: datetime
    updated_at: datetime | None = None
    version: int = 1

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def step_ids(self) -> list[str]:
        return [step.id for step in self.steps]

    def step(self, step_id: str) -> Step | None:
        return next((step for step in self.steps if step.id == step_id), None)


@dataclass(frozen=True)
class Enrollment:
    path_id: str
    user_id: str
    community_id: str
    enrolled_at: datetime
    last_progress_at: datetime
    completed_steps: tuple[str, ...] = ()
    completed_at: datetime | None = None
    version: int = 1

    def done(self, path: Path) -> list[str]:
        """The steps of the path as it is now that the member has done, in path order."""
        completed = set(self.completed_steps)
        return [step.id for step in path.steps if step.id in completed]

    def next_step(self, path: Path) -> str:
        completed = set(self.completed_steps)
        return next((step.id for step in path.steps if step.id not in completed), "")


@dataclass(frozen=True)
class StepDraft:
    """A step as a caller sent it: an id to keep an existing step, or none for a new one."""

    id: str
    kind: int
    post_id: str
    title: str
    resource_id: str = ""


@dataclass(frozen=True)
class Fields:
    """The fields of a path a caller sets; None leaves the stored value."""

    title: str | None = None
    description: str | None = None
    steps: tuple[Step, ...] | None = None
    prerequisites: tuple[str, ...] | None = None
    required_product_id: str | None = None
    changed: tuple[str, ...] = field(default=())


def new_path(community_id: str, fields: Fields, created_by: str, now: datetime) -> Path:
    assert fields.title is not None
    assert fields.steps is not None
    return Path(
        id=str(uuid.uuid4()),
        community_id=community_id,
        title=fields.title.strip(),
        description=(fields.description or "").strip(),
        steps=fields.steps,
        prerequisites=fields.prerequisites or (),
        required_product_id=fields.required_product_id or "",
        created_by=created_by,
        created_at=now,
    )


def new_steps(drafts: Sequence[StepDraft], existing: Collection[str] = ()) -> tuple[Step, ...]:
    """Steps from what a caller sent: a known id is kept, an empty one is given a new id.
    The drafts were checked already (`step_problems`)."""
    return tuple(
        Step(
            draft.id if draft.id in existing else str(uuid.uuid4()),
            StepKind(draft.kind),
            draft.post_id if StepKind(draft.kind) is StepKind.POST else "",
            draft.title.strip(),
            draft.resource_id if StepKind(draft.kind) is StepKind.RESOURCE else "",
        )
        for draft in drafts
    )


def step_problems(
    drafts: Sequence[StepDraft], existing: Collection[str], prefix: str
) -> dict[str, str]:
    """What is wrong with the steps sent, by field, before any post is looked up."""
    problems: dict[str, str] = {}
    if not drafts:
        problems[prefix] = "a path needs at least one step"
    if len(drafts) > STEPS_MAX:
        problems[prefix] = f"a path has at most {STEPS_MAX} steps (got {len(drafts)})"
    seen: set[str] = set()
    for index, draft in enumerate(drafts):
        at = f"{prefix}[{index}]"
        if draft.id:
            if draft.id not in existing:
                problems[f"{at}.id"] = "is not a step of this path; leave it empty for a new step"
            elif draft.id in seen:
                problems[f"{at}.id"] = "names a step twice"
            seen.add(draft.id)
        if draft.kind not in {int(kind) for kind in StepKind}:
            problems[f"{at}.kind"] = "must be post, resource or check-in"
            continue
        if len(draft.title) > STEP_TITLE_MAX:
            problems[f"{at}.title"] = f"must be at most {STEP_TITLE_MAX} characters"
        if StepKind(draft.kind) is StepKind.POST:
            if not _is_uuid(draft.post_id):
                problems[f"{at}.post_id"] = "must be the UUID of a post of this community"
        elif StepKind(draft.kind) is StepKind.RESOURCE:
            if not _is_uuid(draft.resource_id):
                problems[f"{at}.resource_id"] = "must be the UUID of a resource of this community"
        elif not draft.title.strip():
            problems[f"{at}.title"] = "a check-in task says what to do"
    return problems


def prerequisite_problems(
    path_id: str, wanted: Sequence[str], graph: Mapping[str, Sequence[str]], field_name: str
) -> str:
    """Why `wanted` cannot be the prerequisites of `path_id` given every path of the
    community and its prerequisites (`graph`); empty when they can."""
    if len(wanted) > PREREQUISITES_MAX:
        return f"at most {PREREQUISITES_MAX} prerequisites"
    if len(set(wanted)) != len(wanted):
        return "names a path twice"
    for prerequisite in wanted:
        if not _is_uuid(prerequisite):
            return f"{prerequisite!r:.60} is not a path id"
        if prerequisite == path_id:
            return "a path cannot be its own prerequisite"
        if prerequisite not in graph:
            return f"no path {prerequisite} in this community"
    # A cycle through path_id: some prerequisite already needs path_id, directly or not.
    edges = {**graph, path_id: list(wanted)}
    seen: set[str] = set()
    pending = list(wanted)
    while pending:
        current = pending.pop()
        if current == path_id:
            return f"{field_name} would be circular: a prerequisite needs this path"
        if current in seen:
            continue
        seen.add(current)
        pending.extend(edges.get(current, ()))
    return ""


def update(path: Path, fields: Fields, etag: str, now: datetime) -> Path:
    if etag and etag != path.etag:
        raise FailedPrecondition(
            f"path {path.id} changed since you read it (etag {etag}, now {path.etag}); "
            "read it again and reapply your change"
        )
    return replace(
        path,
        title=path.title if fields.title is None else fields.title.strip(),
        description=path.description if fields.description is None else fields.description.strip(),
        steps=path.steps if fields.steps is None else fields.steps,
        prerequisites=path.prerequisites if fields.prerequisites is None else fields.prerequisites,
        required_product_id=(
            path.required_product_id
            if fields.required_product_id is None
            else fields.required_product_id
        ),
        updated_at=now,
        version=path.version + 1,
    )


def enroll(path: Path, user_id: str, completed_paths: Collection[str], now: datetime) -> Enrollment:
    missing = [
        prerequisite for prerequisite in path.prerequisites if prerequisite not in completed_paths
    ]
    if missing:
        raise FailedPrecondition(
            f"path {path.id} needs its prerequisites completed first: {', '.join(missing)}"
        )
    return Enrollment(path.id, user_id, path.community_id, now, now)


def complete_step(
    enrollment: Enrollment, path: Path, step_id: str, now: datetime
) -> tuple[Enrollment, bool]:
    """The enrollment with the step done, and whether this completed the path (once: a
    member who completed it stays completed when steps are added later)."""
    if path.step(step_id) is None:
        raise NotFound(f"step {step_id} not found in path {path.id}")
    if step_id in enrollment.completed_steps:
        return enrollment, False
    done = replace(
        enrollment,
        completed_steps=(*enrollment.completed_steps, step_id),
        last_progress_at=now,
        version=enrollment.version + 1,
    )
    if enrollment.completed_at is None and not done.next_step(path):
        return replace(done, completed_at=now), True
    return done, False


def path_not_found(path_id: str, community_id: str) -> NotFound:
    return NotFound(f"path {path_id} not found in community {community_id}")


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
