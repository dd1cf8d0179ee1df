"""`studyhall path`: learning paths of a community, members' progress and where they are
stuck, in the content service."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from services.cli.calendar import content, when
from services.cli.common import AsJson, AsUser, RequestId, out, show
from studyhall.content.v1 import content_service_pb2 as pb

path_app = typer.Typer(
    help="Learning paths: ordered steps, enrolling, progress.", no_args_is_help=True
)

PageSize = Annotated[int, typer.Option(help="How many per page (at most 100; 0: the default).")]
PageToken = Annotated[str, typer.Option(help="The next page token a previous page printed.")]


def _request_id(given: str) -> str:
    return given or str(uuid.uuid4())


def _step(text: str) -> pb.PathStep:
    """`post:<id>`, `resource:<id>` or `check-in:<what to do>`."""
    kind, _, value = text.partition(":")
    if kind == "post":
        return pb.PathStep(kind=pb.PATH_STEP_KIND_POST, post_id=value)
    if kind == "resource":
        return pb.PathStep(kind=pb.PATH_STEP_KIND_RESOURCE, resource_id=value)
    if kind == "check-in":
        return pb.PathStep(kind=pb.PATH_STEP_KIND_CHECK_IN, title=value)
    raise typer.BadParameter(
        f"--step {text!r}: expected post:<id>, resource:<id> or check-in:<what to do>"
    )


def _progress(progress: pb.PathProgress, as_json: bool) -> None:
    if as_json:
        show(progress, True, "progress")
        return
    done = f"{progress.completed_steps}/{progress.total_steps} steps"
    finished = when(progress, "complete_time")
    typer.echo(f"{done}, completed {finished}" if finished else done)


@path_app.command("create")
def path_create(
    community_id: str,
    title: Annotated[str, typer.Option()],
    step: Annotated[
        list[str],
        typer.Option(help="post:<id>, resource:<id> or check-in:<what to do>; repeat, in order."),
    ],
    description: Annotated[str, typer.Option()] = "",
    requires: Annotated[
        list[str] | None, typer.Option(help="A path to complete first; repeat for several.")
    ] = None,
    product: Annotated[str, typer.Option(help="A product whose entitlement it needs.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Create a learning path (admins); prints its id."""
    reply = content(
        "CreatePath",
        pb.CreatePathRequest(
            request_id=_request_id(request_id),
            community_id=community_id,
            path=pb.LearningPath(
                title=title,
                description=description,
                steps=[_step(text) for text in step],
                prerequisite_path_ids=requires or [],
                required_product_id=product,
            ),
        ),
        as_user,
    )
    if as_json:
        show(reply.path, True, "path")
        return
    typer.echo(reply.path.id)


@path_app.command("show")
def path_show(
    community_id: str, path_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Show a path and its steps."""
    reply = content(
        "GetPath", pb.GetPathRequest(community_id=community_id, path_id=path_id), as_user
    )
    if as_json:
        show(reply.path, True, "path")
        return
    table = Table(title=escape(reply.path.title))
    for column in ("#", "step", "kind", "what"):
        table.add_column(column)
    for number, item in enumerate(reply.path.steps, start=1):
        kind = pb.PathStepKind.Name(item.kind).removeprefix("PATH_STEP_KIND_").lower()
        table.add_row(
            str(number), item.id, kind, escape(item.title or item.post_id or item.resource_id)
        )
    out.print(table)


@path_app.command("list")
def path_list(
    community_id: str,
    recommended: Annotated[
        bool, typer.Option("--recommended", help="Only those recommended to you.")
    ] = False,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's learning paths, oldest first."""
    reply = content(
        "ListPaths",
        pb.ListPathsRequest(
            community_id=community_id,
            recommended_to_me=recommended,
            page_size=page_size,
            page_token=page_token,
        ),
        as_user,
    )
    if as_json:
        show(reply, True, "paths")
        return
    table = Table(title=f"paths ({len(reply.paths)})")
    for column in ("id", "title", "steps", "needs", "product"):
        table.add_column(column)
    for path in reply.paths:
        table.add_row(
            path.id,
            escape(path.title),
            str(len(path.steps)),
            ", ".join(path.prerequisite_path_ids),
            path.required_product_id,
        )
    out.print(table)
    if reply.next_page_token:
        out.print(f"next page: --page-token {reply.next_page_token}")


@path_app.command("enroll")
def path_enroll(
    community_id: str,
    path_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Enroll in a path."""
    reply = content(
        "EnrollInPath",
        pb.EnrollInPathRequest(
            request_id=_request_id(request_id), community_id=community_id, path_id=path_id
        ),
        as_user,
    )
    _progress(reply.progress, as_json)


@path_app.command("done")
def path_done(
    community_id: str,
    path_id: str,
    step_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Mark a step of a path done (enrolls you if you are not)."""
    reply = content(
        "CompletePathStep",
        pb.CompletePathStepRequest(
            request_id=_request_id(request_id),
            community_id=community_id,
            path_id=path_id,
            step_id=step_id,
        ),
        as_user,
    )
    _progress(reply.progress, as_json)


@path_app.command("progress")
def path_progress(
    community_id: str,
    path_id: str,
    member: Annotated[str, typer.Option(help="Whose progress (moderators); default yours.")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Progress on a path."""
    reply = content(
        "GetPathProgress",
        pb.GetPathProgressRequest(community_id=community_id, path_id=path_id, user_id=member),
        as_user,
    )
    _progress(reply.progress, as_json)


@path_app.command("stuck")
def path_stuck(
    community_id: str,
    path_id: str,
    idle_days: Annotated[int, typer.Option(help="No progress for this many days (1-365).")],
    step: Annotated[str, typer.Option(help="Only those stuck on this step.")] = "",
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Who is stuck on which step of a path (moderators)."""
    reply = content(
        "ListStuckMembers",
        pb.ListStuckMembersRequest(
            community_id=community_id,
            path_id=path_id,
            idle_days=idle_days,
            step_id=step,
            page_size=page_size,
            page_token=page_token,
        ),
        as_user,
    )
    if as_json:
        show(reply, True, "stuck")
        return
    table = Table(title=f"stuck for {idle_days}+ days ({len(reply.members)})")
    for column in ("member", "on step", "steps done", "last progress"):
        table.add_column(column)
    for member in reply.members:
        table.add_row(
            member.user_id,
            member.step_id,
            str(member.completed_steps),
            when(member, "last_progress_time"),
        )
    out.print(table)
    if reply.next_page_token:
        out.print(f"next page: --page-token {reply.next_page_token}")


@path_app.command("recommend")
def path_recommend(
    community_id: str,
    path_id: str,
    segment: Annotated[str, typer.Option(help="A segment id of the community (members).")],
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Recommend a path to a segment's members (moderators); prints how many it reached."""
    reply = content(
        "RecommendPath",
        pb.RecommendPathRequest(
            request_id=_request_id(request_id),
            community_id=community_id,
            path_id=path_id,
            segment_id=segment,
        ),
        as_user,
    )
    if as_json:
        show(reply.recommendation, True, "recommendation")
        return
    typer.echo(str(reply.recommendation.member_count))
