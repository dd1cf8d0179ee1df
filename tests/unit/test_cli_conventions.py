"""The CLI's conventions for scripts: --version, and the exit codes `studyhall --help` names."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from services.cli.main import app

pytestmark = pytest.mark.unit


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.stdout.strip()) == (0, f"studyhall {version('studyhall')}")


def test_help_names_the_exit_codes_and_a_usage_error_exits_2() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["--help"], terminal_width=200)
    assert shown.exit_code == 0
    assert "Exit codes: 0 done; 1 refused or failed" in " ".join(shown.stdout.split())
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2
    assert runner.invoke(app, ["community", "create", "--no-such-option"]).exit_code == 2


# Commands whose output is not a record: `up` runs the platform in the foreground, `activity
# ics` prints iCalendar and `member export` prints the member's JSON document itself.
WITHOUT_JSON = {"up", "activity ics", "member export"}


def _commands(command: Any, path: tuple[str, ...], parent: Any) -> Iterator[tuple[str, Any]]:
    # Typer carries its own copy of click: its classes are reached through the command.
    context = type(parent or command.context_class(command))(command, parent=parent)
    if hasattr(command, "list_commands"):
        for name in command.list_commands(context):
            found = command.get_command(context, name)
            assert found is not None
            yield from _commands(found, (*path, name), context)
    else:
        yield " ".join(path), command


def test_every_command_that_answers_with_a_record_takes_json() -> None:
    missing = [
        name
        for name, command in _commands(typer.main.get_command(app), (), None)
        if name not in WITHOUT_JSON
        and not any("--json" in getattr(p, "opts", []) for p in command.params)
    ]
    assert missing == []
