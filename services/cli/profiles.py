"""`studyhall profile`, `studyhall attribute`, `studyhall segment`, `studyhall checkin`,
`studyhall streak`: personas, segments and daily check-ins in a community."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf.field_mask_pb2 import FieldMask

from services.cli.common import (
    AsJson,
    AsUser,
    RequestId,
    call,
    enum_option,
    metadata,
    out,
    show,
    stub,
)
from studyhall.members.v1 import checkins_service_pb2 as checkins_pb
from studyhall.members.v1 import checkins_service_pb2_grpc as checkins_grpc
from studyhall.members.v1 import profiles_service_pb2 as pb
from studyhall.members.v1 import profiles_service_pb2_grpc as pb_grpc

# Registered without a name: its groups and commands sit at the top of `studyhall`.
personas_app = typer.Typer(no_args_is_help=True)
profile_app = typer.Typer(help="Your profile in a community.", no_args_is_help=True)
attribute_app = typer.Typer(help="A community's custom profile attributes.", no_args_is_help=True)
segment_app = typer.Typer(help="Segments: members selected by a rule.", no_args_is_help=True)
personas_app.add_typer(profile_app, name="profile")
personas_app.add_typer(attribute_app, name="attribute")
personas_app.add_typer(segment_app, name="segment")

WhoseOption = Annotated[str, typer.Option("--user", help="Whose (moderators); yours by default.")]
RuleOption = Annotated[
    str,
    typer.Argument(help="The rule as JSON, or @FILE to read it from a file (README: Segments)."),
]


@profile_app.command("show")
def profile_show(
    community_id: str,
    user_id: Annotated[
        str, typer.Option("--user", help="Whose (moderators); yours by default.")
    ] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Show a profile."""
    with stub("members", pb_grpc.ProfilesServiceStub) as client:
        reply = call(
            client.GetProfile,
            pb.GetProfileRequest(community_id=community_id, user_id=user_id),
            metadata(as_user),
        )
    show(reply.profile, as_json, "profile")


@profile_app.command("set")
def profile_set(
    community_id: str,
    interest: Annotated[
        list[str] | None, typer.Option(help="Replaces your interests; repeat.")
    ] = None,
    goal: Annotated[list[str] | None, typer.Option(help="Replaces your goals (up to 5).")] = None,
    level: Annotated[
        str | None, typer.Option(help="beginner, intermediate, advanced, native, unspecified.")
    ] = None,
    time_zone: Annotated[str | None, typer.Option(help="IANA name, e.g. Asia/Shanghai.")] = None,
    birthday: Annotated[
        str | None, typer.Option(help="MM-DD or YYYY-MM-DD; empty to remove it.")
    ] = None,
    birthday_visible: Annotated[
        bool | None, typer.Option("--birthday-visible/--birthday-hidden")
    ] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE for a custom attribute (KEY= clears it); repeat."),
    ] = None,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Change the given fields of your profile; others stay as they are."""
    profile = pb.Profile(community_id=community_id)
    paths: list[str] = []
    if interest is not None:
        profile.interests.extend(interest)
        paths.append("interests")
    if goal is not None:
        profile.learning_goals.extend(goal)
        paths.append("learning_goals")
    if level is not None:
        profile.level = (
            enum_option(pb.ProfileLevel, "PROFILE_LEVEL_", level)  # type: ignore[assignment]
        )
        paths.append("level")
    if time_zone is not None:
        profile.time_zone = time_zone
        paths.append("time_zone")
    if birthday is not None:
        if birthday:
            profile.birthday.CopyFrom(_birthday(birthday))
        paths.append("birthday")
    if birthday_visible is not None:
        profile.birthday_visible = birthday_visible
        paths.append("birthday_visible")
    with stub("members", pb_grpc.ProfilesServiceStub) as client:
        if attr:
            schema = call(
                client.ListAttributes,
                pb.ListAttributesRequest(community_id=community_id),
                metadata(as_user),
            )
            types = {a.key: a.type for a in schema.attributes}
            for item in attr:
                key, _, text = item.partition("=")
                paths.append(f"attributes.{key}")
                if text:
                    profile.attributes[key].CopyFrom(_value(types.get(key), text))
        if not paths:
            raise typer.BadParameter("name at least one field to change")
        reply = call(
            client.UpdateProfile,
            pb.UpdateProfileRequest(
                profile=profile,
                update_mask=FieldMask(paths=paths),
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    show(reply.profile, as_json, "profile")


def _birthday(text: str) -> pb.Birthday:
    parts = text.split("-")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise typer.BadParameter("birthday: MM-DD or YYYY-MM-DD") from None
    if len(numbers) == 2:
        return pb.Birthday(month=numbers[0], day=numbers[1])
    if len(numbers) == 3:
        return pb.Birthday(year=numbers[0], month=numbers[1], day=numbers[2])
    raise typer.BadParameter("birthday: MM-DD or YYYY-MM-DD")


def _value(kind: int | None, text: str) -> pb.AttributeValue:
    # The server checks values against the schema; the CLI only picks the field to send.
    if kind == pb.ATTRIBUTE_TYPE_NUMBER:
        try:
            return pb.AttributeValue(number_value=float(text))
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not a number") from None
    if kind == pb.ATTRIBUTE_TYPE_BOOLEAN:
        return pb.AttributeValue(bool_value=text.lower() in ("true", "yes", "1"))
    if kind == pb.ATTRIBUTE_TYPE_DATE:
        return pb.AttributeValue(date_value=text)
    return pb.AttributeValue(string_value=text)


@attribute_app.command("define")
def attribute_define(
    community_id: str,
    key: Annotated[str, typer.Argument(help="snake_case, fixed once defined.")],
    type_: Annotated[
        str, typer.Option("--type", help="string, number, boolean, date or choice.")
    ] = "string",
    label: Annotated[str, typer.Option(help="What members see; the key by default.")] = "",
    option: Annotated[list[str] | None, typer.Option(help="A choice; repeat.")] = None,
    required: Annotated[bool, typer.Option(help="Every profile must give it.")] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Define a custom profile attribute (admins)."""
    attribute = pb.AttributeDefinition(
        key=key,
        label=label or key.replace("_", " "),
        type=enum_option(pb.AttributeType, "ATTRIBUTE_TYPE_", type_),  # type: ignore[arg-type]
        options=option or [],
        required=required,
    )
    with stub("members", pb_grpc.ProfilesServiceStub) as client:
        reply = call(
            client.DefineAttribute,
            pb.DefineAttributeRequest(
                community_id=community_id,
                attribute=attribute,
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    show(reply.attribute, as_json, "attribute")


@attribute_app.command("list")
def attribute_list(
    community_id: str,
    retired: Annotated[bool, typer.Option(help="Include retired attributes.")] = False,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """The community's profile attributes."""
    with stub("members", pb_grpc.ProfilesServiceStub) as client:
        reply = call(
            client.ListAttributes,
            pb.ListAttributesRequest(community_id=community_id, include_retired=retired),
            metadata(as_user),
        )
    if as_json:
        out.print_json(json.dumps([_attribute_row(a) for a in reply.attributes]))
        return
    for attribute in reply.attributes:
        row = _attribute_row(attribute)
        out.print(
            f"{row['key']}\t{row['type']}\t{row['label']}"
            + (f"\t[{', '.join(row['options'])}]" if row["options"] else "")
            + ("\trequired" if row["required"] else "")
            + ("\tretired" if row["retired"] else "")
        )


def _attribute_row(attribute: pb.AttributeDefinition) -> dict[str, Any]:
    return {
        "key": attribute.key,
        "type": pb.AttributeType.Name(attribute.type).removeprefix("ATTRIBUTE_TYPE_").lower(),
        "label": attribute.label,
        "options": list(attribute.options),
        "required": attribute.required,
        "retired": attribute.retired,
    }


def _rule_text(rule: str) -> str:
    return Path(rule[1:]).read_text() if rule.startswith("@") else rule


@segment_app.command("preview")
def segment_preview(
    community_id: str,
    rule: RuleOption,
    first: Annotated[int, typer.Option(help="How many members to show.")] = 20,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """How many members a rule selects, and the first of them (moderators)."""
    with stub("members", pb_grpc.ProfilesServiceStub) as client:
        reply = call(
            client.PreviewSegment,
            pb.PreviewSegmentRequest(
                community_id=community_id, rule=_rule_text(rule), page_size=first
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "preview")
        return
    out.print(f"{reply.member_count} members")
    for user_id in reply.user_ids:
        out.print(user_id)


@segment_app.command("create")
def segment_create(
    community_id: str,
    name: str,
    rule: RuleOption,
    description: str = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Save a segment; prints its id (moderators)."""
    with stub("members", pb_grpc.ProfilesServiceStub) as client:
        reply = call(
            client.CreateSegment,
            pb.CreateSegmentRequest(
                community_id=community_id,
                name=name,
                description=description,
                rule=_rule_text(rule),
                request_id=request_id or str(uuid.uuid4()),
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "segment")
        return
    typer.echo(reply.segment.id)


@segment_app.command("count")
def segment_count(
    community_id: str, segment_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """How many members a segment holds now (moderators)."""
    with stub("members", pb_grpc.ProfilesServiceStub) as client:
        reply = call(
            client.CountSegment,
            pb.CountSegmentRequest(community_id=community_id, segment_id=segment_id),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "count")
        return
    typer.echo(reply.member_count)


@segment_app.command("members")
def segment_members(
    community_id: str,
    segment_id: str,
    limit: Annotated[int, typer.Option(help="Stop after this many.")] = 100,
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """The members a segment holds now, longest-standing first (moderators)."""
    shown = 0
    token = ""
    found: list[str] = []
    with stub("members", pb_grpc.ProfilesServiceStub) as client:
        while shown < limit:
            reply = call(
                client.ListSegmentMembers,
                pb.ListSegmentMembersRequest(
                    community_id=community_id,
                    segment_id=segment_id,
                    page_size=min(100, limit - shown),
                    page_token=token,
                ),
                metadata(as_user),
            )
            if not as_json:
                for user_id in reply.user_ids:
                    typer.echo(user_id)
            found.extend(reply.user_ids)
            shown += len(reply.user_ids)
            token = reply.next_page_token
            if not token:
                break
    if as_json:
        out.print_json(json.dumps({"user_ids": found}))


@personas_app.command("checkin")
def checkin(
    community_id: str,
    note: Annotated[str, typer.Option(help="What you studied (at most 500 characters).")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Check in for today's study; once per day in your time zone."""
    with stub("members", checkins_grpc.CheckinsServiceStub) as client:
        reply = call(
            client.CheckIn,
            checkins_pb.CheckInRequest(
                community_id=community_id, note=note, request_id=request_id or str(uuid.uuid4())
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "check-in")
        return
    out.print(
        f"checked in for {reply.checkin.local_date}: "
        f"{reply.streak.current_days}-day streak (longest {reply.streak.longest_days})"
    )


@personas_app.command("streak")
def streak(
    community_id: str,
    user_id: Annotated[
        str, typer.Option("--user", help="Whose (moderators); yours by default.")
    ] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A member's check-in streak."""
    with stub("members", checkins_grpc.CheckinsServiceStub) as client:
        reply = call(
            client.GetStreak,
            checkins_pb.GetStreakRequest(community_id=community_id, user_id=user_id),
            metadata(as_user),
        )
    show(reply.streak, as_json, "streak")
