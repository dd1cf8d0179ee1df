"""Wiring of the content service process: the capabilities composed into ContentService."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import grpc

from services.content import text
from services.content.calendar.api import CalendarApi
from services.content.calendar.publishing import PUBLISH, publisher
from services.content.discussion import data as discussion_data
from services.content.discussion.answers_api import AnswersApi
from services.content.discussion.comments_api import CommentsApi
from services.content.discussion.reactions_api import ReactionsApi
from services.content.library import data as library_data
from services.content.library.api import LibraryApi
from services.content.moderation import data as moderation_data
from services.content.moderation import holding
from services.content.moderation.api import RulesApi
from services.content.moderation.consumers import reports_subscription
from services.content.moderation.review_api import ReviewApi, moderation_of
from services.content.moderation.screening import Screen
from services.content.paid import data as paid_data
from services.content.paid.api import PaidApi
from services.content.paid.consumers import entitlements_subscription
from services.content.paid.gate import PaidGate, entitled
from services.content.paths import data as paths_data
from services.content.paths.api import PathsApi
from services.content.paths.progress_api import ProgressApi
from services.content.paths.recommend_api import RecommendationsApi
from services.content.posts import data as posts_data
from services.content.posts.api import PostsApi
from services.content.posts.posting import Posting
from services.content.search.api import SearchApi
from services.content.settings import ContentSettings
from services.content.store.tables import access, idempotency_keys, inbox, outbox, scheduled_jobs
from services.content.themes import data as themes_data
from services.content.themes.api import ThemesApi
from services.content.themes.publishing import PUBLISH_THEME, theme_publisher
from services.content.topics.api import TopicsApi
from services.content.views import data as views_data
from services.content.views.recording import ViewRecorder
from services.kit.access import Access, StandingData, access_subscription
from services.kit.data_rights import DataHolder, erasure_subscription
from services.kit.data_rights_api import DataRightsApi
from services.kit.grouped_writes import GroupedWriter
from services.kit.idempotency import IdempotentWriter
from services.kit.schedule import Handler
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import load_settings
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["ContentService"]
SERVICE_NAME = SERVICE.full_name

# Everything content holds about a member: ExportMyData, EraseMyData and MemberErased.
HOLDERS: tuple[DataHolder, ...] = (
    StandingData(access),
    posts_data,
    discussion_data,
    paths_data,
    library_data,
    themes_data,
    paid_data,
    views_data,
    moderation_data,
)
# What EraseMyData's `erase_text` adds: the text the member wrote, not only their name.
ERASE_TEXT = (posts_data.erase_post_text, discussion_data.erase_comment_text)


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    database = deps.database
    # The analyzer's dictionary loads at start, not in the first write that needs it.
    text.load()
    checks = Access("content", database, access, deps.redis)
    screen = Screen(database)
    # Content's writes arrive in bursts of small transactions: those that arrive together
    # commit together (docs/decisions/0011).
    idempotent = IdempotentWriter(database, idempotency_keys, on_commit=deps.notify_outbox)
    writer = GroupedWriter(idempotent)
    servicer = compose(
        pb_grpc.ContentServiceServicer,
        SERVICE,
        TopicsApi(database, checks, writer),
        # Paid posts: the feeds and GetPost never hand a body to a reader without access.
        PostsApi(
            database,
            checks,
            writer,
            Posting(database, checks, idempotent, holding=holding.held),
            gate=PaidGate(),
            # A read of a published post counts once per member and local day.
            views=ViewRecorder(database, checks, deps.redis, on_commit=deps.notify_outbox),
            # What members write passes the community's keyword rules; what a rule holds
            # goes into review.
            screen=screen,
            holding=holding.held,
            # GetPost of a held, hidden or removed post says why, who and when.
            moderation=moderation_of,
        ),
        CommentsApi(database, checks, writer, screen=screen, holding=holding.held_comment),
        ReactionsApi(database, checks, writer),
        AnswersApi(database, checks, writer),
        CalendarApi(database, checks, writer, scheduled=_waker(deps)),
        ThemesApi(database, checks, writer, scheduled=_waker(deps)),
        LibraryApi(database, checks, writer),
        PathsApi(database, checks, writer),
        ProgressApi(database, checks, writer, entitled=entitled),
        PaidApi(database, checks, writer),
        RecommendationsApi(database, checks, writer, members=_members_channel(deps)),
        SearchApi(database, checks, gate=PaidGate()),
        RulesApi(database, checks, writer, changed=screen.forget),
        ReviewApi(database, checks, writer),
        DataRightsApi(database, writer, HOLDERS, pb, on_request={"erase_text": ERASE_TEXT}),
    )
    pb_grpc.add_ContentServiceServicer_to_server(servicer, server)


def _waker(deps: Dependencies) -> Callable[[], None]:
    scheduler = deps.scheduler
    return scheduler.wake if scheduler is not None else lambda: None


def _members_channel(deps: Dependencies) -> Callable[[], grpc.aio.Channel]:
    """The members service's API, connected on first use (a path recommended to a
    segment): content starts and serves without it."""
    settings = deps.settings
    assert isinstance(settings, ContentSettings)
    channels: list[grpc.aio.Channel] = []

    def channel() -> grpc.aio.Channel:
        if not channels:
            channels.append(grpc.aio.insecure_channel(settings.members_address))
        return channels[0]

    return channel


def jobs(deps: Dependencies) -> Mapping[str, Handler]:
    checks = Access("content", deps.database, access, deps.redis)
    # A scheduled draft a keyword rule holds goes into review when due, not live.
    scheduled = publisher(checks, hold_reason=holding.hold_reason_in, holding=holding.held)
    return {PUBLISH: scheduled, PUBLISH_THEME: theme_publisher(checks)}


SPEC = ServiceSpec(
    name="content",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[SERVICE_NAME],
    register=register,
    outbox=outbox,
    inbox=inbox,
    subscriptions=lambda deps: [
        access_subscription("content", access),
        erasure_subscription("content", HOLDERS),
        entitlements_subscription(),
        # Members' reports about content: the review queue, and removals decided there.
        reports_subscription(),
    ],
    schedule=scheduled_jobs,
    jobs=jobs,
)


def main() -> None:
    run(SPEC, load_settings(ContentSettings))
