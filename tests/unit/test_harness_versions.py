"""The harness's policy for NATS servers it is pointed at: 2.12 or newer, with JetStream."""

from __future__ import annotations

import json

import pytest

from tests.harness.servers import (
    NATS_URL_ENV,
    HarnessError,
    NatsInfo,
    PostgresHandle,
    check_nats_version,
    nats_address,
    parse_nats_info,
    parse_version,
)

pytestmark = pytest.mark.unit

SOURCE = f"{NATS_URL_ENV}=nats://127.0.0.1:4222"


def info_line(**fields: object) -> bytes:
    payload = {"server_id": "NABC", "proto": 1, "host": "0.0.0.0", "port": 4222, **fields}
    return b"INFO " + json.dumps(payload).encode() + b" \r\n"


def test_parse_reads_version_jetstream_and_server_id() -> None:
    info = parse_nats_info(info_line(version="2.15.1", jetstream=True))

    assert info == NatsInfo(
        version="2.15.1", version_tuple=(2, 15, 1), jetstream=True, server_id="NABC"
    )


def test_parse_treats_missing_jetstream_field_as_disabled() -> None:
    assert parse_nats_info(info_line(version="2.12.0")).jetstream is False


@pytest.mark.parametrize(
    "line",
    [
        b"-ERR 'Authorization Violation'\r\n",
        b"INFO {not json}\r\n",
        b'INFO ["a list"]\r\n',
        b'INFO {"jetstream": true}\r\n',
    ],
)
def test_parse_rejects_what_is_not_a_usable_info_line(line: bytes) -> None:
    with pytest.raises(HarnessError):
        parse_nats_info(line)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.15.1", (2, 15, 1)),
        ("v2.9.10", (2, 9, 10)),
        ("2.12", (2, 12, 0)),
        ("2.12.0-RC.3", (2, 12, 0)),
    ],
)
def test_parse_version(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_version(text) == expected


def test_parse_version_rejects_garbage() -> None:
    with pytest.raises(HarnessError):
        parse_version("latest")


@pytest.mark.parametrize("version", ["2.12.0", "2.15.1", "3.0.0"])
def test_accepts_2_12_and_newer_with_jetstream(version: str) -> None:
    check_nats_version(parse_nats_info(info_line(version=version, jetstream=True)), SOURCE)


@pytest.mark.parametrize("version", ["2.9.10", "2.11.9", "1.4.1"])
def test_refuses_older_than_2_12_naming_the_variable_and_version(version: str) -> None:
    info = parse_nats_info(info_line(version=version, jetstream=True))

    with pytest.raises(HarnessError) as refused:
        check_nats_version(info, SOURCE)

    message = str(refused.value)
    assert NATS_URL_ENV in message
    assert version in message
    assert "2.12" in message


def test_refuses_a_server_without_jetstream() -> None:
    info = parse_nats_info(info_line(version="2.15.1", jetstream=False))

    with pytest.raises(HarnessError, match="without JetStream") as refused:
        check_nats_version(info, SOURCE)

    assert NATS_URL_ENV in str(refused.value)


def test_advice_is_appended_to_the_refusal() -> None:
    info = parse_nats_info(info_line(version="2.9.10", jetstream=True))

    with pytest.raises(HarnessError, match="unset it"):
        check_nats_version(info, SOURCE, advice="Or unset it.")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nats://127.0.0.1:4333", ("127.0.0.1", 4333)),
        ("nats://user:secret@nats.internal:4444,nats://other:4222", ("nats.internal", 4444)),
        ("tls://nats.internal", ("nats.internal", 4222)),
        ("127.0.0.1:5222", ("127.0.0.1", 5222)),
    ],
)
def test_nats_address_takes_the_first_server(url: str, expected: tuple[str, int]) -> None:
    assert nats_address(url) == expected


def test_database_url_replaces_only_the_database() -> None:
    server = PostgresHandle(
        "postgresql://postgres:pw@127.0.0.1:5433/postgres?ssl=off", source="env"
    )

    assert server.database_url("t_0123abcd") == (
        "postgresql://postgres:pw@127.0.0.1:5433/t_0123abcd?ssl=off"
    )


@pytest.mark.parametrize("name", ['x"; DROP DATABASE postgres; --', "1abc", "", "a" * 64])
def test_database_names_are_restricted_to_plain_identifiers(name: str) -> None:
    server = PostgresHandle("postgresql://postgres@127.0.0.1:5433/postgres", source="env")

    with pytest.raises(HarnessError):
        server.database_url(name)
