"""Learning paths and progress as the API speaks them."""

from __future__ import annotations

from collections.abc import Sequence

from services.content.paths.domain import Enrollment, Path, Step, StepDraft
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.content.v1 import content_service_pb2 as pb


def step_to_proto(step: Step) -> pb.PathStep:
    return pb.PathStep(
        id=step.id,
        kind=pb.PathStepKind.ValueType(step.kind),
        post_id=step.post_id,
        title=step.title,
        resource_id=step.resource_id,
    )


def path_to_proto(path: Path) -> pb.LearningPath:
    return pb.LearningPath(
        id=path.id,
        community_id=path.community_id,
        title=path.title,
        description=path.description,
        steps=[step_to_proto(step) for step in path.steps],
        prerequisite_path_ids=list(path.prerequisites),
        required_product_id=path.required_product_id,
        created_by_user_id=path.created_by,
        create_time=timestamp(path.created_at),
        update_time=timestamp_or_none(path.updated_at),
        version=path.version,
        etag=path.etag,
    )


def drafts_from_proto(steps: Sequence[pb.PathStep]) -> list[StepDraft]:
    return [
        StepDraft(step.id, int(step.kind), step.post_id, step.title, step.resource_id)
        for step in steps
    ]


def progress_to_proto(enrollment: Enrollment, path: Path) -> pb.PathProgress:
    done = enrollment.done(path)
    return pb.PathProgress(
        community_id=enrollment.community_id,
        path_id=enrollment.path_id,
        user_id=enrollment.user_id,
        completed_step_ids=done,
        completed_steps=len(done),
        total_steps=len(path.steps),
        next_step_id=enrollment.next_step(path),
        enroll_time=timestamp(enrollment.enrolled_at),
        last_progress_time=timestamp(enrollment.last_progress_at),
        complete_time=timestamp_or_none(enrollment.completed_at),
        enrolled=True,
    )
