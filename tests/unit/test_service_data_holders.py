"""Data rights by contract in content, events, billing and analytics: every table that names
a member is exported and erased by one of the service's data holders (`data.py` of the
service or of one of its capability packages, directly or through the store it uses), which
the service lists with the kit's copy of the member's standing (app.py HOLDERS)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from sqlalchemy import Table

from services.kit.access import StandingData

pytestmark = pytest.mark.unit

SERVICES = Path(__file__).resolve().parents[2] / "services"
NAMES = ["content", "events", "billing", "analytics"]
# Columns that name a member; a table with one holds member data.
MEMBER_COLUMNS = {"user_id"}


def member_tables(service: str) -> set[str]:
    tables = importlib.import_module(f"services.{service}.store.tables")
    return {
        table.name
        for table in vars(tables).values()
        if isinstance(table, Table)
        and not table.name.startswith("access_")  # the standing: StandingData
        and any(c.name in MEMBER_COLUMNS or c.name.endswith("_user_id") for c in table.columns)
    }


def holder_modules(service: str) -> list[str]:
    root = SERVICES / service
    return sorted(
        ".".join(("services", *path.relative_to(SERVICES).with_suffix("").parts))
        for path in root.rglob("data.py")
    )


def tables_exported(service: str) -> set[str]:
    """The tables a data holder reaches: those it names itself, and those of the modules of
    its service whose stores or functions it uses (a repository that exports and erases)."""
    names: set[str] = set()
    for name in holder_modules(service):
        module = importlib.import_module(name)
        for value in vars(module).values():
            names |= _tables(value)
            owner = getattr(value, "__module__", None)
            if owner and owner != name and owner.startswith(f"services.{service}."):
                for used in vars(importlib.import_module(owner)).values():
                    names |= _tables(used)
    return names


def _tables(value: object) -> set[str]:
    if isinstance(value, Table):
        return {value.name}
    if isinstance(value, tuple | list):
        return {name for item in value for name in _tables(item)}
    return set()


def test_member_tables_are_found() -> None:
    # The check below means something only if it sees the tables it guards.
    assert member_tables("content") >= {"posts", "comments", "reactions", "post_revisions"}
    assert member_tables("events") >= {"activities"}
    assert member_tables("analytics") >= {"member_states"}


@pytest.mark.parametrize("service", NAMES)
def test_every_table_naming_a_member_is_in_the_services_data_holder(service: str) -> None:
    missing = member_tables(service) - tables_exported(service)
    assert not missing, (
        f"services/{service} keeps member data in {sorted(missing)}, which "
        "no data.py of the service exports and erases"
    )


@pytest.mark.parametrize("service", NAMES)
def test_the_service_lists_its_holders_and_the_standing(service: str) -> None:
    app = importlib.import_module(f"services.{service}.app")
    assert any(isinstance(holder, StandingData) for holder in app.HOLDERS)
    for module in holder_modules(service):
        assert importlib.import_module(module) in app.HOLDERS, f"{module} is not in HOLDERS"
