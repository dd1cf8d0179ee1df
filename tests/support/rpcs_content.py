"""The request catalogue of the content process: ContentService (see
tests/support/catalogue.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from services.content.app import SPEC
from services.content.settings import ContentSettings
from services.content.store.tables import metadata
from services.kit.access import Role
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from tests.support.access import grant
from tests.support.catalogue import (
    Peer,
    Process,
    Rpc,
    World,
    data_rights_entries,
    new_id,
    record_fields,
)
from tests.support.services import RunningService

CONTENT = pb.DESCRIPTOR.services_by_name["ContentService"]
OWNER = "olga"


def _post(world: World) -> pb.CreatePostRequest:
    return pb.CreatePostRequest(
        request_id=new_id(),
        community_id=world.community_id,
        kind=pb.POST_KIND_LINK,
        title="Spaced repetition, week one",
        body="What worked: reviewing at 1, 3 and 7 days.",
        url="https://example.org/spaced-repetition",
        tags=["memory", "method"],
        summary="Notes from the first week",
    )


def _article(world: World, **fields: Any) -> pb.CreatePostRequest:
    return pb.CreatePostRequest(
        request_id=new_id(),
        community_id=world.community_id,
        kind=pb.POST_KIND_ARTICLE,
        title="Reading log",
        body="Chapter 4 of the grammar book.",
        **fields,
    )


def _question(world: World) -> pb.CreatePostRequest:
    return pb.CreatePostRequest(
        request_id=new_id(),
        community_id=world.community_id,
        kind=pb.POST_KIND_QUESTION,
        title="When is the present perfect used?",
        body="I have lived here for ten years, or I live here for ten years?",
    )


def _comment(world: World, post_id: str, body: str = "Reviewing on day 3 helped me too.") -> Any:
    return pb.AddCommentRequest(
        request_id=new_id(), community_id=world.community_id, post_id=post_id, body=body
    )


def _in_a_month() -> str:
    """A local time a month ahead (the world's community has no time zone: UTC)."""
    return (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")


def _weekly_theme() -> pb.Theme:
    """A weekly theme whose first occurrence is days away: nothing publishes in a test."""
    day = datetime.now(UTC) + timedelta(days=3)
    return pb.Theme(
        title="Weekly goals {date}",
        body="What will you practise this week?",
        kind=pb.POST_KIND_QUESTION,
        weekday=day.isoweekday(),
        local_time="09:00",
    )


def _resource() -> pb.Resource:
    return pb.Resource(
        title="English Grammar in Use",
        url="https://example.org/grammar-in-use",
        type=pb.RESOURCE_TYPE_BOOK,
        level=pb.RESOURCE_LEVEL_BEGINNER,
        tags=["grammar"],
        review="The one book to keep.",
    )


def _w(world: World) -> dict[str, Any]:
    return {"request_id": new_id(), "community_id": world.community_id}


CATALOGUE: list[Rpc] = [
    Rpc(
        CONTENT,
        "CreateTopic",
        lambda w: pb.CreateTopicRequest(**_w(w), name=f"Grammar {uuid.uuid4().hex[:8]}"),
        Role.ADMIN,
        True,
    ),
    Rpc(
        CONTENT,
        "UpdateTopic",
        lambda w: pb.UpdateTopicRequest(
            **_w(w),
            topic_id=w.topic_id,
            topic=pb.Topic(description="Tenses, articles and prepositions"),
            update_mask=FieldMask(paths=["description"]),
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        CONTENT,
        "ListTopics",
        lambda w: pb.ListTopicsRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(CONTENT, "CreatePost", _post, Role.MEMBER, True),
    Rpc(
        CONTENT,
        "GetPost",
        lambda w: pb.GetPostRequest(community_id=w.community_id, post_id=w.post_id),
        None,
        False,
        records=("post_views", "outbox"),
    ),
    Rpc(
        CONTENT,
        "UpdatePost",
        lambda w: pb.UpdatePostRequest(
            **_w(w),
            post_id=w.post_id,
            post=pb.Post(title=f"Spaced repetition, {uuid.uuid4().hex[:6]}"),
            update_mask=FieldMask(paths=["title"]),
        ),
        Role.MEMBER,
        True,
        authored=True,
    ),
    Rpc(
        CONTENT,
        "ListPostRevisions",
        lambda w: pb.ListPostRevisionsRequest(community_id=w.community_id, post_id=w.post_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        CONTENT,
        "SchedulePost",
        lambda w: pb.SchedulePostRequest(
            **_w(w), post_id=w.draft_post_id, local_time=_in_a_month()
        ),
        Role.MEMBER,
        True,
        authored=True,
    ),
    Rpc(
        CONTENT,
        "UnschedulePost",
        lambda w: pb.UnschedulePostRequest(**_w(w), post_id=w.scheduled_post_id),
        Role.MEMBER,
        True,
        authored=True,
    ),
    Rpc(
        CONTENT,
        "ListCalendar",
        lambda w: pb.ListCalendarRequest(
            community_id=w.community_id, start_date=datetime.now(UTC).date().isoformat()
        ),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        CONTENT,
        "PublishPost",
        lambda w: pb.PublishPostRequest(**_w(w), post_id=w.draft_post_id),
        Role.MEMBER,
        True,
        authored=True,
    ),
    Rpc(
        CONTENT,
        "DeletePost",
        lambda w: pb.DeletePostRequest(**_w(w), post_id=w.doomed_post_id),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "RestorePost",
        lambda w: pb.RestorePostRequest(**_w(w), post_id=w.deleted_post_id),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "PinPost",
        lambda w: pb.PinPostRequest(**_w(w), post_id=w.post_id),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "UnpinPost",
        lambda w: pb.UnpinPostRequest(**_w(w), post_id=w.pinned_post_id),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "ListPosts",
        lambda w: pb.ListPostsRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(CONTENT, "AddComment", lambda w: _comment(w, w.post_id), Role.MEMBER, True),
    Rpc(
        CONTENT,
        "UpdateComment",
        lambda w: pb.UpdateCommentRequest(
            **_w(w), comment_id=w.comment_id, body=f"Edited: day 3 {uuid.uuid4().hex[:6]}"
        ),
        Role.MEMBER,
        True,
        authored=True,
    ),
    Rpc(
        CONTENT,
        "DeleteComment",
        lambda w: pb.DeleteCommentRequest(**_w(w), comment_id=w.doomed_comment_id),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "ListComments",
        lambda w: pb.ListCommentsRequest(community_id=w.community_id, post_id=w.post_id),
        None,
        False,
    ),
    Rpc(
        CONTENT,
        "React",
        lambda w: pb.ReactRequest(**_w(w), post_id=w.post_id, kind=pb.REACTION_KIND_HELPFUL),
        Role.MEMBER,
        True,
    ),
    Rpc(
        CONTENT,
        "Unreact",
        lambda w: pb.UnreactRequest(**_w(w), post_id=w.post_id, kind=pb.REACTION_KIND_LIKE),
        Role.MEMBER,
        True,
    ),
    Rpc(
        CONTENT,
        "AcceptAnswer",
        lambda w: pb.AcceptAnswerRequest(**_w(w), question_id=w.question_id, answer_id=w.answer_id),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "UnacceptAnswer",
        lambda w: pb.UnacceptAnswerRequest(**_w(w), question_id=w.accepted_question_id),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "ListUnansweredQuestions",
        lambda w: pb.ListUnansweredQuestionsRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    # ---- recurring themes ----
    Rpc(
        CONTENT,
        "CreateTheme",
        lambda w: pb.CreateThemeRequest(**_w(w), theme=_weekly_theme()),
        Role.ADMIN,
        True,
    ),
    Rpc(
        CONTENT,
        "ListThemes",
        lambda w: pb.ListThemesRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        CONTENT,
        "EndTheme",
        lambda w: pb.EndThemeRequest(**_w(w), theme_id=w.theme_id),
        Role.ADMIN,
        True,
    ),
    # ---- resource library ----
    Rpc(
        CONTENT,
        "AddResource",
        lambda w: pb.AddResourceRequest(**_w(w), resource=_resource()),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "UpdateResource",
        lambda w: pb.UpdateResourceRequest(
            **_w(w),
            resource_id=w.resource_id,
            resource=pb.Resource(review=f"Still the best, {uuid.uuid4().hex[:6]}"),
            update_mask=FieldMask(paths=["review"]),
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "GetResource",
        lambda w: pb.GetResourceRequest(community_id=w.community_id, resource_id=w.resource_id),
        None,
        False,
    ),
    Rpc(
        CONTENT,
        "ListResources",
        lambda w: pb.ListResourcesRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(
        CONTENT,
        "RateResource",
        lambda w: pb.RateResourceRequest(**_w(w), resource_id=w.resource_id, stars=4),
        Role.MEMBER,
        True,
    ),
    Rpc(
        CONTENT,
        "SaveResource",
        lambda w: pb.SaveResourceRequest(**_w(w), resource_id=w.resource_id),
        Role.MEMBER,
        True,
    ),
    Rpc(
        CONTENT,
        "UnsaveResource",
        lambda w: pb.UnsaveResourceRequest(**_w(w), resource_id=w.resource_id),
        Role.MEMBER,
        True,
    ),
    Rpc(
        CONTENT,
        "AddKeywordRule",
        lambda w: pb.AddKeywordRuleRequest(**_w(w), phrase=f"spam{uuid.uuid4().hex[:8]}"),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "ListKeywordRules",
        lambda w: pb.ListKeywordRulesRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        CONTENT,
        "RemoveKeywordRule",
        lambda w: pb.RemoveKeywordRuleRequest(**_w(w), rule_id=w.keyword_rule_id),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "ModerateContent",
        lambda w: pb.ModerateContentRequest(
            **_w(w),
            target_kind=pb.MODERATION_TARGET_KIND_POST,
            target_id=w.hidable_post_id,
            action=pb.MODERATION_ACTION_HIDE,
            reason="Off topic for this community",
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        CONTENT,
        "AppealModeration",
        lambda w: pb.AppealModerationRequest(
            **_w(w),
            target_kind=pb.MODERATION_TARGET_KIND_POST,
            target_id=w.moderated_post_id,
            statement="It answers last week's question.",
        ),
        Role.MEMBER,
        True,
        authored=True,
    ),
    Rpc(
        CONTENT,
        "ListReviewQueue",
        lambda w: pb.ListReviewQueueRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        CONTENT,
        "ListModerationLog",
        lambda w: pb.ListModerationLogRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        CONTENT,
        "SearchPosts",
        lambda w: pb.SearchPostsRequest(community_id=w.community_id, query="repetition week"),
        None,
        False,
    ),
    # ---- learning paths ----
    Rpc(
        CONTENT,
        "CreatePath",
        lambda w: pb.CreatePathRequest(
            **_w(w),
            path=pb.LearningPath(
                title="Exam week",
                # A step naming another community's post is INVALID_ARGUMENT naming the
                # field (the rule; tests/service/test_content_paths.py), not the
                # NOT_FOUND of a record asked through another community: no post here.
                steps=[pb.PathStep(kind=pb.PATH_STEP_KIND_CHECK_IN, title="Past papers")],
            ),
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        CONTENT,
        "UpdatePath",
        lambda w: pb.UpdatePathRequest(
            **_w(w),
            path_id=w.path_id,
            path=pb.LearningPath(description=f"Revised {uuid.uuid4().hex[:6]}"),
            update_mask=FieldMask(paths=["description"]),
        ),
        Role.ADMIN,
        True,
    ),
    Rpc(
        CONTENT,
        "GetPath",
        lambda w: pb.GetPathRequest(community_id=w.community_id, path_id=w.path_id),
        None,
        False,
    ),
    Rpc(
        CONTENT,
        "ListPaths",
        lambda w: pb.ListPathsRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(
        CONTENT,
        "EnrollInPath",
        lambda w: pb.EnrollInPathRequest(**_w(w), path_id=w.path_id),
        Role.MEMBER,
        True,
    ),
    Rpc(
        CONTENT,
        "CompletePathStep",
        lambda w: pb.CompletePathStepRequest(**_w(w), path_id=w.path_id, step_id=w.path_step_id),
        Role.MEMBER,
        True,
    ),
    Rpc(
        CONTENT,
        "GetPathProgress",
        lambda w: pb.GetPathProgressRequest(community_id=w.community_id, path_id=w.path_id),
        Role.MEMBER,
        False,
    ),
    Rpc(
        CONTENT,
        "ListStuckMembers",
        lambda w: pb.ListStuckMembersRequest(
            community_id=w.community_id, path_id=w.path_id, idle_days=7
        ),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        CONTENT,
        "RecommendPath",
        lambda w: pb.RecommendPathRequest(**_w(w), path_id=w.path_id, segment_id=w.segment_id),
        Role.MODERATOR,
        True,
        peer_checked=True,
    ),
    # ---- paid content (last: the world's post stays paid, which its author still reads) ----
    Rpc(
        CONTENT,
        "SetPostProduct",
        lambda w: pb.SetPostProductRequest(
            **_w(w), post_id=w.post_id, product_id="prod-catalogue-course"
        ),
        Role.MEMBER,
        True,
        authored=True,
    ),
    *data_rights_entries(CONTENT),
]


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A community the owner owns (as members' events leave it), holding a published post of
    the owner's, and the records of the owner's that `needs` names (all of them for None):
    a topic, a draft, posts to delete, restore and unpin, comments, questions and answers.
    A world that names no record also holds a topic and an unanswered question, which the
    listings that name no record show."""
    wanted = set(record_fields()) if needs is None else set(needs)
    made: dict[str, str] = {}
    if "segment_id" in wanted:
        # A segment lives in members: the community is made there, and content knows it.
        community_id, made["segment_id"] = await _members_segment(running)
    else:
        community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    base = World(community_id=community_id, owner=OWNER)
    owner = running.auth(OWNER)

    async def call(method: str, request: Message) -> Any:
        rpc = Rpc(CONTENT, method, lambda _: request, None, True)
        return await rpc.call(running.channel, request, owner)

    async def post(request: pb.CreatePostRequest) -> str:
        return str((await call("CreatePost", request)).post.id)

    async def comment(post_id: str, body: str) -> str:
        return str((await call("AddComment", _comment(base, post_id, body))).comment.id)

    if not wanted or "topic_id" in wanted:
        made["topic_id"] = (
            await call("CreateTopic", pb.CreateTopicRequest(**_w(base), name="Memory"))
        ).topic.id
    made["post_id"] = await post(_post(base))
    if wanted & {"post_id", "comment_id"}:
        # A revision, a comment and a like: what reads and changes of the post find.
        await call(
            "UpdatePost",
            pb.UpdatePostRequest(
                **_w(base),
                post_id=made["post_id"],
                post=pb.Post(summary="Notes from the first week of reviews"),
                update_mask=FieldMask(paths=["summary"]),
            ),
        )
        made["comment_id"] = await comment(made["post_id"], "Reviewing on day 3 helped me too.")
        await call(
            "React",
            pb.ReactRequest(**_w(base), post_id=made["post_id"], kind=pb.REACTION_KIND_LIKE),
        )
    if "doomed_comment_id" in wanted:
        made["doomed_comment_id"] = await comment(made["post_id"], "Typo above.")
    if "draft_post_id" in wanted:
        made["draft_post_id"] = await post(_article(base, draft=True))
    if "scheduled_post_id" in wanted:
        made["scheduled_post_id"] = await post(_article(base, draft=True))
        await call(
            "SchedulePost",
            pb.SchedulePostRequest(
                **_w(base), post_id=made["scheduled_post_id"], local_time=_in_a_month()
            ),
        )
    if "doomed_post_id" in wanted:
        made["doomed_post_id"] = await post(_article(base))
    if "deleted_post_id" in wanted:
        made["deleted_post_id"] = await post(_article(base))
        await call("DeletePost", pb.DeletePostRequest(**_w(base), post_id=made["deleted_post_id"]))
    if "hidable_post_id" in wanted:
        made["hidable_post_id"] = await post(_article(base))
    if "moderated_post_id" in wanted:
        made["moderated_post_id"] = await post(_article(base))
        await call(
            "ModerateContent",
            pb.ModerateContentRequest(
                **_w(base),
                target_kind=pb.MODERATION_TARGET_KIND_POST,
                target_id=made["moderated_post_id"],
                action=pb.MODERATION_ACTION_HIDE,
                reason="Spam",
            ),
        )
    if "pinned_post_id" in wanted:
        made["pinned_post_id"] = await post(_article(base))
        await call("PinPost", pb.PinPostRequest(**_w(base), post_id=made["pinned_post_id"]))
    if wanted & {"question_id", "answer_id"}:
        made["question_id"] = await post(_question(base))
        made["answer_id"] = await comment(made["question_id"], "The first.")
    if "accepted_question_id" in wanted:
        made["accepted_question_id"] = await post(_question(base))
        answer = await comment(made["accepted_question_id"], "Both.")
        await call(
            "AcceptAnswer",
            pb.AcceptAnswerRequest(
                **_w(base), question_id=made["accepted_question_id"], answer_id=answer
            ),
        )
    if not wanted or "theme_id" in wanted:
        made["theme_id"] = (
            await call("CreateTheme", pb.CreateThemeRequest(**_w(base), theme=_weekly_theme()))
        ).theme.id
    if not wanted or "keyword_rule_id" in wanted:
        made["keyword_rule_id"] = (
            await call("AddKeywordRule", pb.AddKeywordRuleRequest(**_w(base), phrase="casino"))
        ).rule.rule_id
    if not wanted or "resource_id" in wanted:
        made["resource_id"] = (
            await call("AddResource", pb.AddResourceRequest(**_w(base), resource=_resource()))
        ).resource.id
    if not wanted or wanted & {"path_id", "path_step_id", "segment_id"}:
        path = (
            await call(
                "CreatePath",
                pb.CreatePathRequest(
                    **_w(base),
                    path=pb.LearningPath(
                        title="English from zero",
                        steps=[
                            pb.PathStep(kind=pb.PATH_STEP_KIND_CHECK_IN, title="Say hello"),
                            pb.PathStep(kind=pb.PATH_STEP_KIND_CHECK_IN, title="Read the rules"),
                        ],
                    ),
                ),
            )
        ).path
        made["path_id"], made["path_step_id"] = path.id, path.steps[0].id
    if not wanted or needs is None:
        await post(_question(base))  # one nobody answered yet
        # A post hidden and appealed: the moderation log and the review queue show it.
        appealed = await post(_article(base))
        target: dict[str, Any] = {
            "target_kind": pb.MODERATION_TARGET_KIND_POST,
            "target_id": appealed,
        }
        await call(
            "ModerateContent",
            pb.ModerateContentRequest(
                **_w(base), **target, action=pb.MODERATION_ACTION_HIDE, reason="Duplicate"
            ),
        )
        await call(
            "AppealModeration",
            pb.AppealModerationRequest(**_w(base), **target, statement="Not a duplicate."),
        )
    return World(community_id=community_id, owner=OWNER, **made)


async def _members_segment(running: RunningService) -> tuple[str, str]:
    """A community the owner owns in the members peer, and a segment of it."""
    members = running.peers["members"]
    owner = members.auth(OWNER)
    community = await members_grpc.MembersServiceStub(members.channel).CreateCommunity(
        members_pb.CreateCommunityRequest(name=f"Hall {uuid.uuid4().hex[:8]}", topic="exams"),
        metadata=owner,
    )
    segment = await profiles_grpc.ProfilesServiceStub(members.channel).CreateSegment(
        profiles_pb.CreateSegmentRequest(
            community_id=community.community.id,
            name="everyone",
            rule=json.dumps({"points_at_least": 0}),
        ),
        metadata=owner,
    )
    return community.community.id, segment.segment.id


PROCESS = Process(
    name="content",
    spec=SPEC,
    settings=ContentSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
    exported=("post_id", "comment_id"),
    # RecommendPath asks members for a segment's members.
    peers=(
        Peer(
            "members",
            MEMBERS,
            MembersSettings,
            address_setting="members_address",
            overrides={"care_sweep_seconds": 0},
        ),
    ),
)
