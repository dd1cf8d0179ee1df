"""Data rights by contract: every capability of the members service that touches a table
holding member data lists its export sections and erasers, and privacy goes through them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from sqlalchemy import Table

from services.kit.data_rights import DataHolder, check_holders
from services.members.privacy.usecases import HOLDERS
from services.members.store import tables

pytestmark = pytest.mark.unit

MEMBERS = Path(__file__).resolve().parents[2] / "services" / "members"
# Columns that name a member; a table with one holds member data.
MEMBER_COLUMNS = {"user_id", "awarded_by"}


def member_tables() -> set[str]:
    return {
        name
        for name, table in vars(tables).items()
        if isinstance(table, Table)
        and any(c.name in MEMBER_COLUMNS or c.name.endswith("_user_id") for c in table.columns)
    }


def capabilities() -> list[str]:
    return sorted(
        path.name
        for path in MEMBERS.iterdir()
        if (path / "__init__.py").exists() and path.name not in {"store", "privacy"}
    )


def tables_used(capability: str) -> set[str]:
    used: set[str] = set()
    for module in (MEMBERS / capability).glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "services.members.store.tables":
                used.update(alias.name for alias in node.names)
    return used


def test_member_tables_are_found() -> None:
    # The check below means something only if it sees the tables it guards.
    assert {"memberships", "points_ledger", "member_profiles", "reports"} <= member_tables()


@pytest.mark.parametrize("capability", capabilities())
def test_a_capability_with_member_tables_has_a_data_section_privacy_lists(
    capability: str,
) -> None:
    touched = tables_used(capability) & member_tables()
    if not touched:
        pytest.skip(f"{capability} touches no table with member data")
    assert (MEMBERS / capability / "data.py").exists(), (
        f"services/members/{capability} uses {sorted(touched)} (member data) but has no "
        "data.py with its export sections and erasers"
    )
    holder = importlib.import_module(f"services.members.{capability}.data")
    assert holder in HOLDERS, (
        f"services.members.{capability}.data is not listed in privacy/usecases.py HOLDERS, "
        "so ExportMyData and EraseMyData skip it"
    )


def test_every_capability_is_checked() -> None:
    assert {"communities", "moderation", "recognition", "personas", "checkins", "care"} <= set(
        capabilities()
    )


def test_two_holders_claiming_one_section_are_refused() -> None:
    class Holder:
        def __init__(self, section: str) -> None:
            self.EXPORTS = {section: _nothing}
            self.ERASERS = ()

    holders: list[DataHolder] = [Holder("profile"), Holder("profile")]
    with pytest.raises(ValueError, match="profile"):
        check_holders(holders)


async def _nothing(*_: object) -> None:
    return None
