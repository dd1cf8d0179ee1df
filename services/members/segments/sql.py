"""Segment rules compiled to SQL: one WHERE clause over a community's active memberships.

Each condition on something a member has (a custom value, an interest, activity, a streak)
is an EXISTS on the table holding it, keyed by (community_id, user_id): an index lookup per
member, and a semi-join the planner may turn around when the condition is selective. Values
travel as bound parameters only; nothing from a rule is ever spliced into SQL text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, false, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from services.members.checkins import domain as checkins
from services.members.segments.rules import (
    All,
    AnyOf,
    Compare,
    InactiveForDays,
    JoinedBefore,
    JoinedWithinDays,
    LastActiveBefore,
    LevelAtLeast,
    Node,
    Not,
    PointsAtLeast,
    RoleAtLeast,
    StreakAtLeast,
)
from services.members.store.tables import (
    checkin_streaks,
    member_activity,
    member_profiles,
    memberships,
    profile_interests,
    profile_values,
)

# Without a member_activity row a member has the ledger's starting level.
STARTING_LEVEL = 1


def members_matching(
    community_id: str, rule: Node, *, now: datetime, grace_days: int
) -> Select[Any]:
    """user_id of every active member of the community the rule selects."""
    compiler = _Compiler(community_id, now, grace_days)
    return select(memberships.c.user_id).where(
        memberships.c.community_id == community_id,
        memberships.c.active.is_(True),
        compiler.condition(rule),
    )


class _Compiler:
    def __init__(self, community_id: str, now: datetime, grace_days: int) -> None:
        self.community_id = community_id
        self.now = now
        self.grace_days = grace_days

    def condition(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, All):
            return and_(*(self.condition(child) for child in node.children))
        if isinstance(node, AnyOf):
            return or_(*(self.condition(child) for child in node.children))
        if isinstance(node, Not):
            return not_(self.condition(node.child))
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, RoleAtLeast):
            return memberships.c.role >= int(node.role)
        if isinstance(node, JoinedWithinDays):
            return memberships.c.joined_at >= self.now - timedelta(days=node.days)
        if isinstance(node, JoinedBefore):
            return memberships.c.joined_at < _midnight(node.day)
        if isinstance(node, PointsAtLeast):
            if node.points <= 0:
                return true()
            return self.activity(member_activity.c.points_total >= node.points)
        if isinstance(node, LevelAtLeast):
            if node.level <= STARTING_LEVEL:
                return true()
            return self.activity(member_activity.c.level >= node.level)
        if isinstance(node, LastActiveBefore):
            # Never active counts as inactive: no activity since the day began.
            return not_(self.activity(member_activity.c.last_active_at >= _midnight(node.day)))
        if isinstance(node, InactiveForDays):
            since = self.now - timedelta(days=node.days)
            return not_(self.activity(member_activity.c.last_active_at >= since))
        if isinstance(node, StreakAtLeast):
            if node.days <= 0:
                return true()
            return self.owned(
                checkin_streaks,
                checkin_streaks.c.current >= node.days,
                checkin_streaks.c.next_day_start > checkins.alive_after(self.now, self.grace_days),
            )
        raise TypeError(f"not a rule node: {node!r}")

    def owned(self, table: Any, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
        """The member has a row in `table` (keyed by community and user) meeting `conditions`."""
        return exists().where(
            table.c.community_id == self.community_id,
            table.c.user_id == memberships.c.user_id,
            *conditions,
        )

    def activity(self, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return self.owned(member_activity, condition)

    def compare(self, node: Compare) -> ColumnElement[bool]:
        field = node.field
        if field.key == "interests":
            if node.op == "exists":
                found = self.owned(profile_interests)
                return found if node.value else not_(found)
            return self.owned(profile_interests, profile_interests.c.tag == node.value)
        if field.custom:
            column = profile_values.c[_VALUE_COLUMNS[field.kind]]
            key = profile_values.c.key == field.key
            if node.op == "exists":
                found = self.owned(profile_values, key)
                return found if node.value else not_(found)
            return self.owned(profile_values, key, _operator(column, node.op, node.value))
        column = member_profiles.c[field.key]
        present = column != "" if field.kind == "string" else column.is_not(None)
        if node.op == "exists":
            found = self.owned(member_profiles, present)
            return found if node.value else not_(found)
        return self.owned(member_profiles, present, _operator(column, node.op, node.value))


_VALUE_COLUMNS = {
    "string": "value_text",
    "choice": "value_text",
    "number": "value_number",
    "boolean": "value_bool",
    "date": "value_date",
}


def _operator(column: Any, op: str, value: object) -> ColumnElement[bool]:
    # `ne` is "has a value, and another one": a member without the value is in neither
    # `eq` nor `ne`; `not` of `eq` includes them.
    if op == "in":
        assert isinstance(value, tuple)
        return column.in_(list(value))  # type: ignore[no-any-return]
    comparisons: dict[str, Any] = {
        "eq": column.__eq__,
        "ne": column.__ne__,
        "lt": column.__lt__,
        "lte": column.__le__,
        "gt": column.__gt__,
        "gte": column.__ge__,
    }
    if op not in comparisons:
        return false()
    return comparisons[op](value)  # type: ignore[no-any-return]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)
