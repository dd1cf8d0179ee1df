"""Learning paths: ordered steps of posts, resources and check-in tasks; members enroll, mark
steps done and complete a path once; prerequisites between paths, never circular; changes
by field mask and etag; where enrolled members are stuck; bad input refused naming the
field with nothing written."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select, update

from services.content.store.tables import metadata, outbox, path_enrollments
from services.kit.access import Role
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from tests.support.access import grant
from tests.support.catalogue import changed_tables, snapshot
from tests.support.errors import field_violations
from tests.support.members import Hall
from tests.support.services import RunningService

pytestmark = pytest.mark.service


class Community:
    """A community of the content service with an admin (olga) and posts to build paths
    from."""

    def __init__(self, content: RunningService, community_id: str) -> None:
        self.content = content
        self.id = community_id
        self.stub = pb_grpc.ContentServiceStub(content.channel)

    @classmethod
    async def create(cls, content: RunningService, *members: str) -> Community:
        community = cls(content, str(uuid.uuid4()))
        await grant(content, community.id, "olga", Role.ADMIN)
        for user in members:
            await grant(content, community.id, user, Role.MEMBER)
        return community

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.content.auth(user)

    async def post(self, **fields: Any) -> str:
        reply = await self.stub.CreatePost(
            pb.CreatePostRequest(
                community_id=self.id,
                kind=pb.POST_KIND_ARTICLE,
                title="Grammar in use",
                body="Read chapter 4 and write three sentences.",
                **fields,
            ),
            metadata=self.auth("olga"),
        )
        return str(reply.post.id)

    async def resource(self, **fields: Any) -> str:
        reply = await self.stub.AddResource(
            pb.AddResourceRequest(
                community_id=self.id,
                resource=pb.Resource(
                    title="English Grammar in Use",
                    url="https://example.org/grammar-in-use",
                    type=pb.RESOURCE_TYPE_BOOK,
                    level=pb.RESOURCE_LEVEL_BEGINNER,
                    **fields,
                ),
            ),
            metadata=self.auth("olga"),
        )
        return str(reply.resource.id)

    async def path(self, steps: list[pb.PathStep], **fields: Any) -> pb.LearningPath:
        reply = await self.stub.CreatePath(
            pb.CreatePathRequest(
                community_id=self.id,
                path=pb.LearningPath(title="English from zero", steps=steps, **fields),
            ),
            metadata=self.auth("olga"),
        )
        path: pb.LearningPath = reply.path
        return path

    async def simple_path(self, **fields: Any) -> pb.LearningPath:
        return await self.path([_check_in("Say hello in the intro thread")], **fields)

    async def enroll(self, user: str, path_id: str) -> pb.PathProgress:
        reply = await self.stub.EnrollInPath(
            pb.EnrollInPathRequest(community_id=self.id, path_id=path_id), metadata=self.auth(user)
        )
        progress: pb.PathProgress = reply.progress
        return progress

    async def complete(self, user: str, path_id: str, step_id: str) -> pb.PathProgress:
        reply = await self.stub.CompletePathStep(
            pb.CompletePathStepRequest(community_id=self.id, path_id=path_id, step_id=step_id),
            metadata=self.auth(user),
        )
        progress: pb.PathProgress = reply.progress
        return progress

    async def events(self) -> list[str]:
        async with self.content.deps.database.read() as session:
            rows = await session.execute(
                select(outbox.c.event_type)
                .where(outbox.c.community_id == self.id)
                .order_by(outbox.c.seq)
            )
            return [str(row.event_type).rsplit(".", 1)[-1] for row in rows]


def _check_in(title: str) -> pb.PathStep:
    return pb.PathStep(kind=pb.PATH_STEP_KIND_CHECK_IN, title=title)


def _post_step(post_id: str) -> pb.PathStep:
    return pb.PathStep(kind=pb.PATH_STEP_KIND_POST, post_id=post_id)


async def test_a_member_works_through_a_path_and_completes_it_once(
    content: RunningService,
) -> None:
    hall = await Community.create(content, "ada")
    article = await hall.post()
    resource = await hall.resource()
    path = await hall.path(
        [
            _post_step(article),
            pb.PathStep(kind=pb.PATH_STEP_KIND_RESOURCE, resource_id=resource),
            _check_in("Write your first five sentences"),
        ],
        description="Three weeks to your first conversation",
    )
    assert [step.kind for step in path.steps] == [
        pb.PATH_STEP_KIND_POST,
        pb.PATH_STEP_KIND_RESOURCE,
        pb.PATH_STEP_KIND_CHECK_IN,
    ]
    first, second, third = (step.id for step in path.steps)

    progress = await hall.enroll("ada", path.id)
    assert (progress.completed_steps, progress.total_steps, progress.next_step_id) == (0, 3, first)
    # Enrolling again changes nothing.
    assert (await hall.enroll("ada", path.id)).enroll_time == progress.enroll_time

    await hall.complete("ada", path.id, second)
    progress = await hall.complete("ada", path.id, first)
    assert list(progress.completed_step_ids) == [first, second]
    assert progress.next_step_id == third
    assert not progress.HasField("complete_time")
    done = await hall.complete("ada", path.id, third)
    assert done.HasField("complete_time")
    assert done.next_step_id == ""
    # A step done twice counts once and completes nothing again.
    again = await hall.complete("ada", path.id, third)
    assert again.complete_time == done.complete_time

    read = await hall.stub.GetPathProgress(
        pb.GetPathProgressRequest(community_id=hall.id, path_id=path.id),
        metadata=hall.auth("ada"),
    )
    assert read.progress == done
    assert await hall.events() == [
        "PostCreated",
        "ResourceAdded",
        "PathCreated",
        "PathEnrolled",
        "PathStepCompleted",
        "PathStepCompleted",
        "PathStepCompleted",
        "PathCompleted",
    ]
    # Someone else's progress is for moderators.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await hall.stub.GetPathProgress(
            pb.GetPathProgressRequest(community_id=hall.id, path_id=path.id, user_id="olga"),
            metadata=hall.auth("ada"),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    by_admin = await hall.stub.GetPathProgress(
        pb.GetPathProgressRequest(community_id=hall.id, path_id=path.id, user_id="ada"),
        metadata=hall.auth("olga"),
    )
    assert by_admin.progress.completed_steps == 3


async def test_completing_a_step_enrolls_and_an_unknown_step_is_not_found(
    content: RunningService,
) -> None:
    hall = await Community.create(content, "ada")
    path = await hall.path([_check_in("Introduce yourself"), _check_in("Read the rules")])
    before = await hall.stub.GetPathProgress(
        pb.GetPathProgressRequest(community_id=hall.id, path_id=path.id),
        metadata=hall.auth("ada"),
    )
    assert not before.progress.enrolled
    assert before.progress.next_step_id == path.steps[0].id
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await hall.complete("ada", path.id, str(uuid.uuid4()))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    progress = await hall.complete("ada", path.id, path.steps[1].id)
    assert progress.enrolled
    assert progress.next_step_id == path.steps[0].id
    assert await hall.events() == ["PathCreated", "PathEnrolled", "PathStepCompleted"]


async def test_prerequisites_come_first_and_a_circle_is_refused_with_nothing_written(
    content: RunningService,
) -> None:
    hall = await Community.create(content, "ada")
    basics = await hall.simple_path()
    grammar = await hall.simple_path(prerequisite_path_ids=[basics.id])

    with pytest.raises(grpc.aio.AioRpcError) as early:
        await hall.enroll("ada", grammar.id)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert basics.id in (early.value.details() or "")
    await hall.enroll("ada", basics.id)
    await hall.complete("ada", basics.id, basics.steps[0].id)
    assert (await hall.enroll("ada", grammar.id)).total_steps == 1

    before = await snapshot(content, metadata)
    with pytest.raises(grpc.aio.AioRpcError) as circle:
        await hall.stub.UpdatePath(
            pb.UpdatePathRequest(
                community_id=hall.id,
                path_id=basics.id,
                path=pb.LearningPath(prerequisite_path_ids=[grammar.id]),
                update_mask=FieldMask(paths=["prerequisite_path_ids"]),
            ),
            metadata=hall.auth("olga"),
        )
    assert circle.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "circular" in field_violations(circle.value)["path.prerequisite_path_ids"]
    with pytest.raises(grpc.aio.AioRpcError) as itself:
        await hall.stub.UpdatePath(
            pb.UpdatePathRequest(
                community_id=hall.id,
                path_id=basics.id,
                path=pb.LearningPath(prerequisite_path_ids=[basics.id]),
                update_mask=FieldMask(paths=["prerequisite_path_ids"]),
            ),
            metadata=hall.auth("olga"),
        )
    assert "path.prerequisite_path_ids" in field_violations(itself.value)
    assert changed_tables(before, await snapshot(content, metadata)) == []


async def test_a_step_pointing_outside_the_community_or_at_no_published_post_is_refused(
    content: RunningService,
) -> None:
    hall = await Community.create(content)
    other = await Community.create(content)
    elsewhere = await other.post()
    draft = await hall.post(draft=True)
    other_resource = await other.resource()
    other_path = await other.simple_path()

    before = await snapshot(content, metadata)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await hall.path(
            [
                _post_step(elsewhere),
                _post_step(draft),
                pb.PathStep(kind=pb.PATH_STEP_KIND_RESOURCE, resource_id=other_resource),
                pb.PathStep(kind=pb.PATH_STEP_KIND_CHECK_IN),
            ],
            prerequisite_path_ids=[other_path.id],
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    problems = field_violations(refused.value)
    # Checked without reading the store first: the check-in needs a title.
    assert set(problems) == {"path.steps[3].title"}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await hall.path(
            [
                _post_step(elsewhere),
                _post_step(draft),
                pb.PathStep(kind=pb.PATH_STEP_KIND_RESOURCE, resource_id=other_resource),
            ],
            prerequisite_path_ids=[other_path.id],
        )
    problems = field_violations(refused.value)
    assert set(problems) == {
        "path.steps[0].post_id",
        "path.steps[1].post_id",
        "path.steps[2].resource_id",
        "path.prerequisite_path_ids",
    }
    # Another community's post reads as no post at all.
    assert problems["path.steps[0].post_id"] == f"no published post {elsewhere} in this community"
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await hall.path([])
    assert "path.steps" in field_violations(empty.value)
    assert changed_tables(before, await snapshot(content, metadata)) == []


async def test_an_admin_changes_steps_by_mask_and_etag_and_kept_steps_keep_progress(
    content: RunningService,
) -> None:
    hall = await Community.create(content, "ada")
    path = await hall.path([_check_in("Introduce yourself"), _check_in("Read the rules")])
    intro, rules = (step.id for step in path.steps)
    await hall.enroll("ada", path.id)
    await hall.complete("ada", path.id, intro)

    changed = await hall.stub.UpdatePath(
        pb.UpdatePathRequest(
            community_id=hall.id,
            path_id=path.id,
            path=pb.LearningPath(
                title="English from zero, second edition",
                steps=[
                    pb.PathStep(id=intro, kind=pb.PATH_STEP_KIND_CHECK_IN, title="Say hi"),
                    _check_in("Book a speaking slot"),
                ],
            ),
            update_mask=FieldMask(paths=["steps", "title"]),
            etag=path.etag,
        ),
        metadata=hall.auth("olga"),
    )
    assert changed.path.version == path.version + 1
    assert changed.path.description == path.description
    assert changed.path.steps[0].id == intro
    assert changed.path.steps[0].title == "Say hi"
    assert rules not in [step.id for step in changed.path.steps]
    progress = await hall.stub.GetPathProgress(
        pb.GetPathProgressRequest(community_id=hall.id, path_id=path.id),
        metadata=hall.auth("ada"),
    )
    assert list(progress.progress.completed_step_ids) == [intro]
    assert progress.progress.next_step_id == changed.path.steps[1].id

    before = await snapshot(content, metadata)
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await hall.stub.UpdatePath(
            pb.UpdatePathRequest(
                community_id=hall.id,
                path_id=path.id,
                path=pb.LearningPath(title="Lost update"),
                update_mask=FieldMask(paths=["title"]),
                etag=path.etag,
            ),
            metadata=hall.auth("olga"),
        )
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as foreign_step:
        await hall.stub.UpdatePath(
            pb.UpdatePathRequest(
                community_id=hall.id,
                path_id=path.id,
                path=pb.LearningPath(
                    steps=[
                        pb.PathStep(
                            id=str(uuid.uuid4()), kind=pb.PATH_STEP_KIND_CHECK_IN, title="Stolen"
                        )
                    ]
                ),
                update_mask=FieldMask(paths=["steps"]),
            ),
            metadata=hall.auth("olga"),
        )
    assert "path.steps[0].id" in field_violations(foreign_step.value)
    with pytest.raises(grpc.aio.AioRpcError) as unknown_field:
        await hall.stub.UpdatePath(
            pb.UpdatePathRequest(
                community_id=hall.id,
                path_id=path.id,
                path=pb.LearningPath(id=str(uuid.uuid4())),
                update_mask=FieldMask(paths=["id"]),
            ),
            metadata=hall.auth("olga"),
        )
    assert "update_mask" in field_violations(unknown_field.value)
    with pytest.raises(grpc.aio.AioRpcError) as member:
        await hall.stub.UpdatePath(
            pb.UpdatePathRequest(
                community_id=hall.id,
                path_id=path.id,
                path=pb.LearningPath(title="Mine now"),
                update_mask=FieldMask(paths=["title"]),
            ),
            metadata=hall.auth("ada"),
        )
    assert member.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert changed_tables(before, await snapshot(content, metadata)) == []


async def test_paths_are_listed_oldest_first_page_by_page(content: RunningService) -> None:
    hall = await Community.create(content)
    made = [(await hall.simple_path()).id for _ in range(3)]
    first = await hall.stub.ListPaths(
        pb.ListPathsRequest(community_id=hall.id, page_size=2), metadata=hall.auth("ada")
    )
    second = await hall.stub.ListPaths(
        pb.ListPathsRequest(community_id=hall.id, page_size=2, page_token=first.next_page_token),
        metadata=hall.auth("ada"),
    )
    assert [path.id for path in [*first.paths, *second.paths]] == made
    assert second.next_page_token == ""
    read = await hall.stub.GetPath(
        pb.GetPathRequest(community_id=hall.id, path_id=made[0]), metadata=hall.auth("ada")
    )
    assert read.path.id == made[0]


async def test_moderators_see_who_is_stuck_on_which_step(content: RunningService) -> None:
    learners = ["ada", "ben", "cy", "dee"]
    hall = await Community.create(content, *learners)
    path = await hall.path([_check_in("Introduce yourself"), _check_in("Read the rules")])
    intro, rules = (step.id for step in path.steps)
    for user in learners:
        await hall.enroll(user, path.id)
    await hall.complete("ben", path.id, intro)
    await hall.complete("dee", path.id, intro)
    # ada idle 10 days on the first step, ben 8 on the second, cy 5 on the first, dee active.
    async with content.deps.database.write() as session:
        for user, days in (("ada", 10), ("ben", 8), ("cy", 5)):
            await session.execute(
                update(path_enrollments)
                .where(path_enrollments.c.path_id == path.id, path_enrollments.c.user_id == user)
                .values(last_progress_at=datetime.now(UTC) - timedelta(days=days))
            )

    def ask(**fields: Any) -> Any:
        return hall.stub.ListStuckMembers(
            pb.ListStuckMembersRequest(community_id=hall.id, path_id=path.id, **fields),
            metadata=hall.auth("olga"),
        )

    week = await ask(idle_days=7)
    assert [(m.user_id, m.step_id) for m in week.members] == [("ada", intro), ("ben", rules)]
    assert [(s.step_id, s.members) for s in week.steps] == [(intro, 1), (rules, 1)]
    first = await ask(idle_days=3, page_size=1)
    rest = await ask(idle_days=3, page_size=1, page_token=first.next_page_token)
    last = await ask(idle_days=3, page_size=1, page_token=rest.next_page_token)
    assert [m.user_id for m in [*first.members, *rest.members, *last.members]] == [
        "ada",
        "ben",
        "cy",
    ]
    assert [(s.step_id, s.members) for s in first.steps] == [(intro, 2), (rules, 1)]
    assert last.next_page_token == ""
    assert list(rest.steps) == []
    on_intro = await ask(idle_days=3, step_id=intro)
    assert [m.user_id for m in on_intro.members] == ["ada", "cy"]

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await ask(idle_days=0)
    assert "idle_days" in field_violations(bad.value)
    with pytest.raises(grpc.aio.AioRpcError) as member:
        await hall.stub.ListStuckMembers(
            pb.ListStuckMembersRequest(community_id=hall.id, path_id=path.id, idle_days=7),
            metadata=hall.auth("ada"),
        )
    assert member.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_path_recommended_to_a_segment_reaches_its_members_of_that_moment(
    content: RunningService,
) -> None:
    """The segment is asked of members (the content fixture runs it as a peer) with the
    moderator's own token; the snapshot stays as taken."""
    members = content.peers["members"]
    hall = await Hall.create(members)
    for user in ("ada", "ben"):
        await hall.join(user)
    people = profiles_grpc.ProfilesServiceStub(members.channel)
    segment = await people.CreateSegment(
        profiles_pb.CreateSegmentRequest(
            community_id=hall.id, name="everyone", rule=json.dumps({"points_at_least": 0})
        ),
        metadata=hall.auth("olga"),
    )
    community = Community(content, hall.id)
    await grant(content, hall.id, "olga", Role.OWNER)
    for user in ("ada", "ben", "cy"):
        await grant(content, hall.id, user, Role.MEMBER)
    path = await community.simple_path()
    other = await community.simple_path()

    recommended = await community.stub.RecommendPath(
        pb.RecommendPathRequest(
            community_id=hall.id, path_id=path.id, segment_id=segment.segment.id
        ),
        metadata=community.auth("olga"),
    )
    assert recommended.recommendation.member_count == 3  # olga, ada, ben
    await hall.join("cy")  # joined after: not in the snapshot

    async def mine(user: str) -> list[str]:
        reply = await community.stub.ListPaths(
            pb.ListPathsRequest(community_id=hall.id, recommended_to_me=True),
            metadata=community.auth(user),
        )
        return [found.id for found in reply.paths]

    assert await mine("ada") == [path.id]
    assert await mine("cy") == []
    everything = await community.stub.ListPaths(
        pb.ListPathsRequest(community_id=hall.id), metadata=community.auth("cy")
    )
    assert [found.id for found in everything.paths] == [path.id, other.id]
    assert (await community.events())[-1] == "PathRecommended"

    # A moderator here whom members does not know as one may not have content list it.
    await grant(content, hall.id, "ben", Role.MODERATOR)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await community.stub.RecommendPath(
            pb.RecommendPathRequest(
                community_id=hall.id, path_id=path.id, segment_id=segment.segment.id
            ),
            metadata=community.auth("ben"),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await community.stub.RecommendPath(
            pb.RecommendPathRequest(
                community_id=hall.id, path_id=path.id, segment_id=str(uuid.uuid4())
            ),
            metadata=community.auth("olga"),
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
