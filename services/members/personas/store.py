"""Storage of profile schemas, profiles (with their custom values) and segments."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.kit.versioned import save_versioned
from services.members.personas.profiles import (
    Attribute,
    AttributeType,
    Birthday,
    Level,
    Profile,
    Value,
)
from services.members.store.tables import (
    member_profiles,
    profile_attributes,
    profile_interests,
    profile_values,
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
        await save_versioned(
            self.session, profile_attributes, [_attribute_row(attribute)], _ATTRIBUTE_KEY
        )

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
        await save_versioned(
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
