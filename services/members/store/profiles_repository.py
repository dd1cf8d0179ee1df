"""Storage of profile schemas, profiles (with their custom values) and segments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.kit.projection import upsert
from services.members.profiles import Attribute, AttributeType, Birthday, Level, Profile, Value
from services.members.segment_rules import Node, Segment
from services.members.store.segment_sql import members_matching
from services.members.store.tables import (
    member_profiles,
    memberships,
    profile_attributes,
    profile_interests,
    profile_values,
    segments,
)


class AttributeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def schema(self, community_id: str) -> list[Attribute]:
        """Every attribute ever defined in the community, retired ones too, in order."""
        rows = await self.session.execute(
            select(profile_attributes)
            .where(profile_attributes.c.community_id == community_id)
            .order_by(profile_attributes.c.position)
        )
        return [_attribute(row) for row in rows.all()]

    async def save(self, attribute: Attribute) -> None:
        await upsert(self.session, profile_attributes, [_attribute_row(attribute)], _ATTRIBUTE_KEY)

    async def drop_values(self, community_id: str, key: str) -> None:
        await self.session.execute(
            delete(profile_values).where(
                profile_values.c.community_id == community_id, profile_values.c.key == key
            )
        )


_ATTRIBUTE_KEY = ["community_id", "key"]


def _attribute_row(attribute: Attribute) -> dict[str, object]:
    return {
        "community_id": attribute.community_id,
        "key": attribute.key,
        "label": attribute.label,
        "type": int(attribute.type),
        "required": attribute.required,
        "options": list(attribute.options),
        "position": attribute.position,
        "created_at": attribute.created_at,
        "retired_at": attribute.retired_at,
        "version": attribute.version,
    }


def _attribute(row: Row[Any]) -> Attribute:
    return Attribute(
        community_id=row.community_id,
        key=row.key,
        label=row.label,
        type=AttributeType(row.type),
        required=row.required,
        options=tuple(row.options),
        position=row.position,
        created_at=utc(row.created_at),
        retired_at=utc(row.retired_at) if row.retired_at else None,
        version=row.version,
    )


class ProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, community_id: str, user_id: str) -> Profile:
        """The member's profile; an empty one (version 0) if they never saved it."""
        row = (
            await self.session.execute(
                select(member_profiles).where(
                    member_profiles.c.community_id == community_id,
                    member_profiles.c.user_id == user_id,
                )
            )
        ).first()
        if row is None:
            return Profile(community_id, user_id)
        values = await self.session.execute(
            select(profile_values).where(
                profile_values.c.community_id == community_id,
                profile_values.c.user_id == user_id,
            )
        )
        return _profile(row, {value.key: _value(value) for value in values.all()})

    async def save(self, profile: Profile) -> None:
        where_member = {"community_id": profile.community_id, "user_id": profile.user_id}
        await upsert(
            self.session, member_profiles, [_profile_row(profile)], ["community_id", "user_id"]
        )
        for table in (profile_interests, profile_values):
            await self.session.execute(
                delete(table).where(
                    table.c.community_id == profile.community_id,
                    table.c.user_id == profile.user_id,
                )
            )
        if profile.interests:
            await self.session.execute(
                profile_interests.insert(),
                [{**where_member, "tag": tag} for tag in profile.interests],
            )
        if profile.attributes:
            await self.session.execute(
                profile_values.insert(),
                [
                    {**where_member, "key": key, **_value_columns(value)}
                    for key, value in profile.attributes.items()
                ],
            )

    async def erase(self, community_id: str, user_id: str) -> None:
        for table in (profile_interests, profile_values, member_profiles):
            await self.session.execute(
                delete(table).where(
                    table.c.community_id == community_id, table.c.user_id == user_id
                )
            )


def _value_columns(value: Value) -> dict[str, object]:
    columns: dict[str, object] = {
        "value_text": None,
        "value_number": None,
        "value_bool": None,
        "value_date": None,
    }
    if isinstance(value, bool):
        columns["value_bool"] = value
    elif isinstance(value, float):
        columns["value_number"] = value
    elif isinstance(value, date):
        columns["value_date"] = value
    else:
        columns["value_text"] = value
    return columns


def _value(row: Row[Any]) -> Value:
    if row.value_bool is not None:
        return bool(row.value_bool)
    if row.value_number is not None:
        return float(row.value_number)
    if row.value_date is not None:
        return row.value_date  # type: ignore[no-any-return]
    return str(row.value_text)


def _profile_row(profile: Profile) -> dict[str, object]:
    birthday = profile.birthday
    return {
        "community_id": profile.community_id,
        "user_id": profile.user_id,
        "interests": list(profile.interests),
        "learning_goals": list(profile.learning_goals),
        "level": int(profile.level) if profile.level else None,
        "time_zone": profile.time_zone,
        "birth_month": birthday.month if birthday else None,
        "birth_day": birthday.day if birthday else None,
        "birth_year": (birthday.year or None) if birthday else None,
        "birthday_visible": profile.birthday_visible,
        "version": profile.version,
        "updated_at": profile.updated_at,
    }


def _profile(row: Row[Any], values: dict[str, Value]) -> Profile:
    return Profile(
        community_id=row.community_id,
        user_id=row.user_id,
        interests=tuple(row.interests),
        learning_goals=tuple(row.learning_goals),
        level=Level(row.level) if row.level else None,
        time_zone=row.time_zone,
        birthday=Birthday(row.birth_month, row.birth_day, row.birth_year or 0)
        if row.birth_month
        else None,
        birthday_visible=row.birthday_visible,
        attributes=values,
        version=row.version,
        updated_at=utc(row.updated_at),
    )


async def profile_time_zone(session: AsyncSession, community_id: str, user_id: str) -> str:
    zone = await session.scalar(
        select(member_profiles.c.time_zone).where(
            member_profiles.c.community_id == community_id, member_profiles.c.user_id == user_id
        )
    )
    return zone or ""


class SegmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, segment: Segment) -> None:
        await self.session.execute(segments.insert().values(**_segment_row(segment)))

    async def save(self, segment: Segment) -> None:
        await self.session.execute(
            segments.update()
            .where(segments.c.id == segment.id, segments.c.community_id == segment.community_id)
            .values(**_segment_row(segment))
        )

    async def delete(self, segment: Segment) -> None:
        await self.session.execute(
            delete(segments).where(
                segments.c.id == segment.id, segments.c.community_id == segment.community_id
            )
        )

    async def get(self, community_id: str, segment_id: str) -> Segment | None:
        row = (
            await self.session.execute(
                select(segments).where(
                    segments.c.id == segment_id, segments.c.community_id == community_id
                )
            )
        ).first()
        return _segment(row) if row else None

    async def name_taken(self, community_id: str, name: str, *, other_than: str = "") -> bool:
        found = await self.session.scalar(
            select(segments.c.id).where(
                segments.c.community_id == community_id,
                segments.c.name == name,
                segments.c.id != other_than,
            )
        )
        return found is not None

    async def listing(
        self, community_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Segment]:
        """The community's segments, oldest first, after the `after` position."""
        query = select(segments).where(segments.c.community_id == community_id)
        if after is not None:
            query = query.where(tuple_(segments.c.created_at, segments.c.id) > tuple_(*after))
        query = query.order_by(segments.c.created_at, segments.c.id).limit(limit)
        return [_segment(row) for row in (await self.session.execute(query)).all()]


def _segment_row(segment: Segment) -> dict[str, object]:
    return {
        "id": segment.id,
        "community_id": segment.community_id,
        "name": segment.name,
        "description": segment.description,
        "rule": segment.rule,
        "created_by_user_id": segment.created_by_user_id,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
        "version": segment.version,
    }


def _segment(row: Row[Any]) -> Segment:
    return Segment(
        id=row.id,
        community_id=row.community_id,
        name=row.name,
        description=row.description,
        rule=row.rule,
        created_by_user_id=row.created_by_user_id,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        version=row.version,
    )


async def count_members(
    session: AsyncSession, community_id: str, rule: Node, *, now: datetime, grace_days: int
) -> int:
    """How many active members of the community the rule selects."""
    matching = members_matching(community_id, rule, now=now, grace_days=grace_days)
    count = await session.scalar(select(func.count()).select_from(matching.subquery()))
    return int(count or 0)


async def list_matching_members(
    session: AsyncSession,
    community_id: str,
    rule: Node,
    *,
    now: datetime,
    grace_days: int,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[datetime, str]]:
    """(join time, user id) of matching active members, longest-standing first."""
    query = members_matching(community_id, rule, now=now, grace_days=grace_days).add_columns(
        memberships.c.joined_at
    )
    if after is not None:
        query = query.where(tuple_(memberships.c.joined_at, memberships.c.user_id) > tuple_(*after))
    query = query.order_by(memberships.c.joined_at, memberships.c.user_id).limit(limit)
    return [(utc(row.joined_at), row.user_id) for row in (await session.execute(query)).all()]
