"""The `aftercare device` command group: argument wiring and the local stack's state file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from devices.cli import (
    StateFileError,
    _agent_config,
    default_broker_url,
    default_outbox_dir,
    find_state_file,
    parse_reading,
    register,
)
from infra.local.broker_auth import issue_device_credentials


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aftercare")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def write_state(directory: Path, content: object) -> Path:
    path = directory / ".aftercare" / "local.json"
    path.parent.mkdir(parents=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_broker_url_comes_from_the_local_stack_state_file(tmp_path: Path):
    state = write_state(tmp_path, {"mqtt_url": "mqtt://127.0.0.1:18831", "region": "us-east-1"})
    assert default_broker_url(state) == "mqtt://127.0.0.1:18831"


def test_the_state_file_is_found_from_a_subdirectory_of_the_project(tmp_path: Path):
    state = write_state(tmp_path, {"mqtt_url": "mqtt://127.0.0.1:18831"})
    nested = tmp_path / "functions" / "fault_intake"
    nested.mkdir(parents=True)
    assert find_state_file(nested) == state
    assert default_outbox_dir(state) == tmp_path / ".aftercare" / "devices"


def test_without_a_state_file_the_error_says_how_to_fix_it(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StateFileError) as caught:
        default_broker_url(None)
    message = str(caught.value)
    assert "\n" not in message
    assert "aftercare local up" in message and "--broker" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"region": "us-east-1"}, "has no mqtt_url"),
        ("{not json", "cannot read"),
        ({"mqtt_url": "http://127.0.0.1:80"}, "unsupported broker URL"),
    ],
)
def test_a_state_file_without_a_usable_mqtt_url_is_a_clear_error(
    tmp_path: Path, content: object, message: str
):
    state = write_state(tmp_path, content)
    with pytest.raises(StateFileError, match=message):
        default_broker_url(state)


def test_a_named_state_file_that_does_not_exist_is_a_clear_error(tmp_path: Path):
    with pytest.raises(StateFileError, match="does not exist"):
        default_broker_url(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("voltage_v=262.5", ("voltage_v", 262.5)),
        ("fan_rpm=0", ("fan_rpm", 0)),
        ("door_open=true", ("door_open", True)),
        ("mode=eco", ("mode", "eco")),
        ("note=a=b", ("note", "a=b")),
    ],
)
def test_readings_take_the_type_they_read_as(text: str, expected: tuple[str, object]):
    assert parse_reading(text) == expected


@pytest.mark.parametrize("text", ["voltage", "=3"])
def test_a_reading_without_name_and_value_is_a_usage_error(text: str):
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
        parse_reading(text)


def test_device_fault_arguments_are_wired():
    args = parse(
        "device", "fault", "--thing", "dev-1", "--code", "PSU-OVERVOLT", "--severity", "major",
        "--reading", "voltage_v=262", "--reading", "ok=false", "--message", "rail high",
        "--broker", "mqtt://127.0.0.1:1", "--wait-ack", "3",
    )  # fmt: skip
    assert (args.thing, args.code, args.severity, args.message) == (
        "dev-1",
        "PSU-OVERVOLT",
        "major",
        "rail high",
    )
    assert args.reading == [("voltage_v", 262), ("ok", False)]
    assert args.wait_ack == 3.0 and callable(args.func)


def test_device_run_arguments_are_wired():
    args = parse("device", "run", "--thing", "dev-1", "--remote-fixable", "PSU-OVERVOLT")
    assert args.remote_fixable == ["PSU-OVERVOLT"] and args.broker is None
    assert callable(args.func)


def test_an_unknown_severity_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        parse("device", "fault", "--thing", "dev-1", "--code", "X1", "--severity", "urgent")
    assert "invalid choice" in capsys.readouterr().err


def test_a_bad_argument_value_becomes_one_line_on_stderr(tmp_path: Path, capsys):
    # Given a fault whose code breaks the contract's pattern
    args = parse(
        "device", "fault", "--thing", "dev-1", "--code", "not a code",
        "--broker", "mqtt://127.0.0.1:1", "--outbox-dir", str(tmp_path), "--wait-ack", "0.2",
    )  # fmt: skip
    # When the command runs
    code = args.func(args)
    # Then it fails with one line naming the field
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("aftercare device: code:") and "\n" not in err


def test_on_the_local_stack_a_device_uses_its_own_certificate(tmp_path: Path):
    # Given a local stack whose broker takes client certificates, and a seeded thing
    state = write_state(tmp_path, {"mqtt_url": "mqtts://127.0.0.1:18831"})
    issued = issue_device_credentials(state.parent, "rt-x-0001")
    args = parse("device", "run", "--thing", "rt-x-0001", "--state-file", str(state))
    # Then the agent connects with that thing's certificate, key and the stack's CA
    config = _agent_config(args)
    assert (config.cert_file, config.key_file, config.ca_file) == (
        issued.cert_file,
        issued.key_file,
        issued.ca_file,
    )


def test_a_local_thing_without_credentials_is_told_how_to_get_them(tmp_path: Path):
    state = write_state(tmp_path, {"mqtt_url": "mqtts://127.0.0.1:18831"})
    args = parse("device", "run", "--thing", "ghost-0001", "--state-file", str(state))
    with pytest.raises(StateFileError, match="aftercare devices provision --thing ghost-0001"):
        _agent_config(args)
