"""`studyhall library`: a community's curated resources, rated and saved by members, in the
content service."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from services.cli.calendar import content
from services.cli.common import AsJson, AsUser, RequestId, enum_option, out, show
from studyhall.content.v1 import content_service_pb2 as pb

library_app = typer.Typer(
    help="The resource library: books, courses, tools, articles, videos.", no_args_is_help=True
)


def _request_id(given: str) -> str:
    return given or str(uuid.uuid4())


@library_app.command("add")
def library_add(
    community_id: str,
    title: Annotated[str, typer.Option()],
    url: Annotated[str, typer.Option()],
    type_: Annotated[str, typer.Option("--type", help="book, course, tool, article or video.")],
    level: Annotated[str, typer.Option(help="beginner, intermediate or advanced.")],
    tag: Annotated[list[str] | None, typer.Option(help="Repeat for several tags.")] = None,
    review: Annotated[str, typer.Option(help="A short review, at most 1,000 characters.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Add a resource to the library (moderators); prints its id."""
    reply = content(
        "AddResource",
        pb.AddResourceRequest(
            request_id=_request_id(request_id),
            community_id=community_id,
            resource=pb.Resource(
                title=title,
                url=url,
                type=enum_option(pb.ResourceType, "RESOURCE_TYPE_", type_),  # type: ignore[arg-type]
                level=enum_option(pb.ResourceLevel, "RESOURCE_LEVEL_", level),  # type: ignore[arg-type]
                tags=tag or [],
                review=review,
            ),
        ),
        as_user,
    )
    if as_json:
        show(reply.resource, True, "resource")
        return
    typer.echo(reply.resource.id)


@library_app.command("list")
def library_list(
    community_id: str,
    level: Annotated[str, typer.Option(help="beginner, intermediate or advanced.")] = "",
    tag: Annotated[str, typer.Option()] = "",
    min_rating: Annotated[int, typer.Option(help="Rated at least this on average (1-5).")] = 0,
    top: Annotated[bool, typer.Option("--top", help="Best rated first.")] = False,
    saved: Annotated[bool, typer.Option("--saved", help="Only those you saved.")] = False,
    page_size: Annotated[int, typer.Option(help="How many per page (at most 100).")] = 0,
    page_token: Annotated[str, typer.Option(help="The next page token printed.")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Browse the library by level, tag and rating."""
    reply = content(
        "ListResources",
        pb.ListResourcesRequest(
            community_id=community_id,
            level=enum_option(pb.ResourceLevel, "RESOURCE_LEVEL_", level) if level else 0,  # type: ignore[arg-type]
            tag=tag,
            min_rating=min_rating,
            order=pb.RESOURCE_ORDER_TOP_RATED if top else pb.RESOURCE_ORDER_NEWEST,
            saved_only=saved,
            page_size=page_size,
            page_token=page_token,
        ),
        as_user,
    )
    if as_json:
        show(reply, True, "resources")
        return
    table = Table(title=f"resources ({len(reply.resources)})")
    for column in ("id", "title", "type", "level", "tags", "rating", "saved"):
        table.add_column(column)
    for resource in reply.resources:
        table.add_row(
            resource.id,
            escape(resource.title),
            pb.ResourceType.Name(resource.type).removeprefix("RESOURCE_TYPE_").lower(),
            pb.ResourceLevel.Name(resource.level).removeprefix("RESOURCE_LEVEL_").lower(),
            ", ".join(resource.tags),
            f"{resource.rating_average:.1f} ({resource.rating_count})",
            "yes" if resource.saved else "",
        )
    out.print(table)
    if reply.next_page_token:
        out.print(f"next page: --page-token {reply.next_page_token}")


@library_app.command("show")
def library_show(
    community_id: str, resource_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Show a resource, with your rating and whether you saved it."""
    reply = content(
        "GetResource",
        pb.GetResourceRequest(community_id=community_id, resource_id=resource_id),
        as_user,
    )
    show(reply.resource, as_json, "resource")


@library_app.command("rate")
def library_rate(
    community_id: str,
    resource_id: str,
    stars: int,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Rate a resource 1 to 5 (again: replaces your rating); prints its average."""
    reply = content(
        "RateResource",
        pb.RateResourceRequest(
            request_id=_request_id(request_id),
            community_id=community_id,
            resource_id=resource_id,
            stars=stars,
        ),
        as_user,
    )
    if as_json:
        show(reply.resource, True, "resource")
        return
    typer.echo(f"{reply.resource.rating_average:.2f}")


@library_app.command("save")
def library_save(
    community_id: str,
    resource_id: str,
    remove: Annotated[bool, typer.Option("--remove", help="Take it off your list.")] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Save a resource to your list (or take it off with --remove)."""
    fields = {
        "request_id": _request_id(request_id),
        "community_id": community_id,
        "resource_id": resource_id,
    }
    if remove:
        reply = content("UnsaveResource", pb.UnsaveResourceRequest(**fields), as_user)
    else:
        reply = content("SaveResource", pb.SaveResourceRequest(**fields), as_user)
    show(reply.resource, as_json, "resource")
