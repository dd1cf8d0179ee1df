from __future__ import annotations

from pathlib import Path

import pytest

from services.kit.settings import env_name, load_settings
from services.members.settings import MembersSettings

pytestmark = pytest.mark.unit


def test_defaults_give_a_local_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "STUDYHALL_DATA_DIR",
        "STUDYHALL_MEMBERS_DATABASE_URL",
        "STUDYHALL_MEMBERS_GRPC_PORT",
    ):
        monkeypatch.delenv(variable, raising=False)
    settings = load_settings(MembersSettings)
    assert settings.effective_grpc_port() == 50051
    assert settings.effective_metrics_port() == 9451
    assert settings.effective_database_url().endswith(".studyhall/members.db")
    assert settings.effective_key_file() == Path(".studyhall/keys/signing.jwks.json")


def test_service_settings_carry_the_service_prefix_and_shared_ones_do_not() -> None:
    assert env_name(MembersSettings, "grpc_port") == "STUDYHALL_MEMBERS_GRPC_PORT"
    assert env_name(MembersSettings, "database_url") == "STUDYHALL_MEMBERS_DATABASE_URL"
    assert env_name(MembersSettings, "nats_url") == "STUDYHALL_NATS_URL"


def test_bad_value_exits_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STUDYHALL_MEMBERS_METRICS_PORT", "70000")
    with pytest.raises(SystemExit) as caught:
        load_settings(MembersSettings)
    assert caught.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("members: invalid setting STUDYHALL_MEMBERS_METRICS_PORT='70000':")
    assert "\n" not in error
