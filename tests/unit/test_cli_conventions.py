"""The CLI's conventions for scripts: --version, and the exit codes `studyhall --help` names."""

from __future__ import annotations

from importlib.metadata import version

import pytest
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
