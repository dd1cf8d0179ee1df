"""gRPC edge of personas: the attribute schema and members' profiles. With the segments'
handlers they make up ProfilesService (composed in `app.py`)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from services.kit.idempotency import IdempotentWriter
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from services.members.communities import domain
from services.members.communities.access import community_for, require_role, require_writable
from services.members.communities.store import CommunityRepository
from services.members.personas import profiles
from services.members.personas.profiles import Attribute, AttributeType, Birthday, Level, Profile
from services.members.personas.store import AttributeRepository, ProfileRepository
from studyhall.members.v1 import profiles_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["ProfilesService"]
SERVICE_NAME = SERVICE.full_name

ATTRIBUTE_UPDATABLE = ("label", "required", "options")
PROFILE_UPDATABLE = (
    "interests",
    "learning_goals",
    "level",
    "time_zone",
    "birthday",
    "birthday_visible",
    "attributes",
)


class ProfilesApi:
    def __init__(self, database: Database, writer: IdempotentWriter) -> None:
        self.database = database
        self.writer = writer

    # --- The attribute schema ---

    async def DefineAttribute(
        self, request: pb.DefineAttributeRequest, context: grpc.aio.ServicerContext
    ) -> pb.DefineAttributeResponse:
        caller = current_identity()
        new = request.attribute
        problems = Violations()
        for field, message in profiles.check_definition(
            new.key, new.label, int(new.type), list(new.options)
        ):
            problems.add(f"attribute.{field}", message)
        problems.raise_if_any()

        async def define(session: AsyncSession) -> pb.DefineAttributeResponse:
            await _admin_of(session, request.community_id, caller, "defining attributes")
            repository = AttributeRepository(session)
            schema = await repository.schema(request.community_id)
            attribute = Attribute(
                community_id=request.community_id,
                key=new.key,
                label=new.label,
                type=AttributeType(new.type),
                required=new.required,
                options=tuple(new.options),
            )
            defined = profiles.define(schema, attribute)
            await repository.save(defined)
            return pb.DefineAttributeResponse(attribute=attribute_to_proto(defined))

        return await self.writer.write(caller.user_id, request, pb.DefineAttributeResponse, define)

    async def UpdateAttribute(
        self, request: pb.UpdateAttributeRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateAttributeResponse:
        caller = current_identity()
        new = request.attribute
        paths = list(request.update_mask.paths)
        problems = Violations()
        if not profiles.KEY_PATTERN.fullmatch(new.key):
            problems.add("attribute.key", "name the attribute to change by its key")
        _check_mask(problems, paths, ATTRIBUTE_UPDATABLE)
        if "label" in paths:
            for field, message in profiles.check_label(new.label):
                problems.add(f"attribute.{field}", message)
        problems.raise_if_any()

        async def update(session: AsyncSession) -> pb.UpdateAttributeResponse:
            await _admin_of(session, request.community_id, caller, "changing attributes")
            repository = AttributeRepository(session)
            current = _find(await repository.schema(request.community_id), new.key)
            options = tuple(new.options) if "options" in paths else None
            if options is not None:
                wrong = profiles.check_options(current.type, options)
                if wrong:
                    raise InvalidArgument(
                        [FieldViolation(f"attribute.{field}", message) for field, message in wrong]
                    )
            changed = profiles.change(
                current,
                label=new.label if "label" in paths else None,
                required=new.required if "required" in paths else None,
                options=options,
            )
            await repository.save(changed)
            return pb.UpdateAttributeResponse(attribute=attribute_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.UpdateAttributeResponse, update)

    async def ListAttributes(
        self, request: pb.ListAttributesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAttributesResponse:
        caller = current_identity()
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MEMBER, "reading the profile schema"
            )
            schema = await AttributeRepository(session).schema(community.id)
        return pb.ListAttributesResponse(
            attributes=[
                attribute_to_proto(a) for a in schema if request.include_retired or not a.retired
            ]
        )

    async def RetireAttribute(
        self, request: pb.RetireAttributeRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetireAttributeResponse:
        caller = current_identity()
        problems = Violations()
        if not profiles.KEY_PATTERN.fullmatch(request.key):
            problems.add("key", "name the attribute to retire by its key")
        problems.raise_if_any()

        async def retire(session: AsyncSession) -> pb.RetireAttributeResponse:
            await _admin_of(session, request.community_id, caller, "retiring attributes")
            repository = AttributeRepository(session)
            current = _find(await repository.schema(request.community_id), request.key)
            retired = profiles.retire(current, datetime.now(UTC))
            await repository.save(retired)
            await repository.drop_values(retired.community_id, retired.key)
            return pb.RetireAttributeResponse(attribute=attribute_to_proto(retired))

        return await self.writer.write(caller.user_id, request, pb.RetireAttributeResponse, retire)

    # --- Profiles ---

    async def GetProfile(
        self, request: pb.GetProfileRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetProfileResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("user_id", request.user_id, required=False)
        problems.raise_if_any()
        target = request.user_id or caller.user_id
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            if target != caller.user_id:
                # Whether someone is a member is not a plain member's to learn: the refusal
                # comes before looking them up.
                await require_role(
                    communities,
                    community,
                    caller,
                    domain.Role.MODERATOR,
                    "reading others' profiles",
                )
            await _active_member(communities, community.id, target)
            profile = await ProfileRepository(session).get(community.id, target)
        if target != caller.user_id:
            profile = profiles.as_seen_by_others(profile)
        return pb.GetProfileResponse(profile=profile_to_proto(profile))

    async def UpdateProfile(
        self, request: pb.UpdateProfileRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateProfileResponse:
        caller = current_identity()
        new = request.profile
        paths = list(request.update_mask.paths)
        problems = Violations()
        problems.uuid("profile.community_id", new.community_id)
        if new.user_id and new.user_id != caller.user_id:
            problems.add("profile.user_id", "a profile is changed only by its member; leave empty")
        _check_mask(problems, paths, PROFILE_UPDATABLE, prefixed=("attributes.",))
        _check_profile_fields(problems, new, paths)
        problems.raise_if_any()
        changes = _standard_changes(new, paths)

        async def update(session: AsyncSession) -> pb.UpdateProfileResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, new.community_id, caller)
            require_writable(community, "changing your profile")
            await _active_member(communities, community.id, caller.user_id)
            schema = await AttributeRepository(session).schema(community.id)
            profiles_ = ProfileRepository(session)
            current = await profiles_.get(community.id, caller.user_id)
            values = _attribute_changes(new, paths, schema, dict(current.attributes))
            changed = profiles.updated(
                current, {**changes, "attributes": values}, datetime.now(UTC)
            )
            await profiles_.save(changed)
            return pb.UpdateProfileResponse(profile=profile_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.UpdateProfileResponse, update)


async def _admin_of(session: AsyncSession, community_id: str, caller: Identity, what: str) -> None:
    """Checks an admin may change the community's attribute schema, and holds the community
    so that changes to the schema queue (its size limit and positions are read first)."""
    communities = CommunityRepository(session)
    community = await community_for(communities, community_id, caller)
    await require_role(communities, community, caller, domain.Role.ADMIN, what)
    require_writable(community, what)
    await communities.hold(community.id)


async def _active_member(communities: CommunityRepository, community_id: str, user_id: str) -> None:
    membership = await communities.membership(community_id, user_id)
    if membership is None or not membership.active:
        raise NotFound(
            f"{user_id} is not a member of community {community_id}; only members have profiles"
        )


def _find(schema: list[Attribute], key: str) -> Attribute:
    for attribute in schema:
        if attribute.key == key:
            return attribute
    raise NotFound(f"attribute {key!r} is not defined in this community")


def _check_mask(
    problems: Violations, paths: list[str], allowed: tuple[str, ...], prefixed: tuple[str, ...] = ()
) -> None:
    if not paths:
        problems.add("update_mask", "name at least one field to change")
    for path in paths:
        if path not in allowed and not path.startswith(prefixed):
            problems.add("update_mask", f"{path!r} cannot be changed; use one of {allowed}")


def _check_profile_fields(problems: Violations, new: pb.Profile, paths: list[str]) -> None:
    if "interests" in paths:
        problems.tags("interests", list(new.interests))
    if "learning_goals" in paths:
        goals = list(new.learning_goals)
        if len(goals) > profiles.MAX_LEARNING_GOALS:
            problems.add(
                "learning_goals", f"must have at most {profiles.MAX_LEARNING_GOALS} entries"
            )
        for index, goal in enumerate(goals):
            problems.text(f"learning_goals[{index}]", goal, max_length=200)
    if "level" in paths:
        problems.enum("level", new.level, Level, "ProfileLevel")
    if "time_zone" in paths:
        wrong = profiles.check_time_zone(new.time_zone)
        if wrong:
            problems.add("time_zone", wrong)
    if "birthday" in paths and new.HasField("birthday"):
        wrong = profiles.check_birthday(
            Birthday(new.birthday.month, new.birthday.day, new.birthday.year)
        )
        if wrong:
            problems.add("birthday", wrong)


def _standard_changes(new: pb.Profile, paths: list[str]) -> dict[str, object]:
    changes: dict[str, object] = {}
    if "interests" in paths:
        changes["interests"] = tuple(dict.fromkeys(new.interests))
    if "learning_goals" in paths:
        changes["learning_goals"] = tuple(new.learning_goals)
    if "level" in paths:
        changes["level"] = Level(new.level) if new.level else None
    if "time_zone" in paths:
        changes["time_zone"] = new.time_zone
    if "birthday" in paths:
        birthday = new.birthday
        changes["birthday"] = (
            Birthday(birthday.month, birthday.day, birthday.year)
            if new.HasField("birthday")
            else None
        )
    if "birthday_visible" in paths:
        changes["birthday_visible"] = new.birthday_visible
    return changes


def _attribute_changes(
    new: pb.Profile, paths: list[str], schema: list[Attribute], values: dict[str, profiles.Value]
) -> dict[str, profiles.Value]:
    """The member's custom values after the update; raises InvalidArgument naming every
    value the schema refuses (so nothing is written)."""
    by_key = {attribute.key: attribute for attribute in schema}
    if "attributes" in paths:
        values = {}
        touched = list(new.attributes)
    else:
        touched = [
            path.removeprefix("attributes.") for path in paths if path.startswith("attributes.")
        ]
    problems = Violations()
    for key in touched:
        if key not in new.attributes:
            values.pop(key, None)
            continue
        value = _from_proto(new.attributes[key])
        wrong = profiles.check_value(by_key.get(key), key, value)
        if wrong:
            problems.add(f'attributes["{key}"]', wrong)
        else:
            assert value is not None
            values[key] = value
    # Values of retired attributes are gone already; a stale one never blocks an update.
    values = {key: value for key, value in values.items() if key in by_key}
    for key in profiles.missing_required(schema, values):
        problems.add(f'attributes["{key}"]', f"is required in this community ({by_key[key].label})")
    problems.raise_if_any()
    return values


def _from_proto(value: pb.AttributeValue) -> profiles.Value | str | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "date_value":
        try:
            return date.fromisoformat(value.date_value)
        except ValueError:
            return value.date_value
    return None


def _to_proto_value(value: profiles.Value) -> pb.AttributeValue:
    if isinstance(value, bool):
        return pb.AttributeValue(bool_value=value)
    if isinstance(value, float):
        return pb.AttributeValue(number_value=value)
    if isinstance(value, date):
        return pb.AttributeValue(date_value=value.isoformat())
    return pb.AttributeValue(string_value=value)


def attribute_to_proto(attribute: Attribute) -> pb.AttributeDefinition:
    return pb.AttributeDefinition(
        key=attribute.key,
        label=attribute.label,
        type=pb.AttributeType.ValueType(attribute.type),
        required=attribute.required,
        options=list(attribute.options),
        retired=attribute.retired,
        create_time=timestamp(attribute.created_at),
        version=attribute.version,
    )


def profile_to_proto(profile: Profile) -> pb.Profile:
    birthday = profile.birthday
    return pb.Profile(
        community_id=profile.community_id,
        user_id=profile.user_id,
        interests=list(profile.interests),
        learning_goals=list(profile.learning_goals),
        level=pb.ProfileLevel.ValueType(profile.level or 0),
        time_zone=profile.time_zone,
        birthday=pb.Birthday(month=birthday.month, day=birthday.day, year=birthday.year)
        if birthday
        else None,
        birthday_visible=profile.birthday_visible,
        attributes={key: _to_proto_value(value) for key, value in profile.attributes.items()},
        version=profile.version,
        update_time=timestamp(profile.updated_at) if profile.updated_at else None,
    )
