"""`aftercare device run` / `device fault` against a real Mosquitto."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aftercare.models.payloads import FaultReport

from devices.cli import register
from tests.integration.mosquitto_fixture import MosquittoBroker, Recorder

pytestmark = pytest.mark.integration

# The device commands behind a minimal `aftercare` parser, for running in a subprocess.
RUN_CLI = (
    "import argparse, sys\n"
    "from devices.cli import register\n"
    "parser = argparse.ArgumentParser(prog='aftercare')\n"
    "register(parser.add_subparsers(dest='command', required=True))\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.func(args))\n"
)


def run_command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="aftercare")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_device_fault_prints_the_acknowledged_report(
    mosquitto: MosquittoBroker, tmp_path: Path, capsys
):
    # Given the local stack's state file naming the broker, and a subscriber
    state = tmp_path / ".aftercare" / "local.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"mqtt_url": mosquitto.url}))
    recorder = Recorder(mosquitto.url, "cli-probe", ["dt/aftercare/+/fault"]).start()
    try:
        # When an engineer raises a fault from the command line
        code = run_command(
            "device", "fault", "--thing", "dev-cli-1", "--code", "PSU-OVERVOLT",
            "--severity", "major", "--reading", "voltage_v=262.5", "--state-file", str(state),
        )  # fmt: skip
        # Then it prints the report the broker acknowledged, and the subscriber got the same
        printed = FaultReport.model_validate_json(capsys.readouterr().out)
        assert code == 0
        assert (printed.code, printed.readings) == ("PSU-OVERVOLT", {"voltage_v": 262.5})
        (message,) = recorder.take(1)
        assert FaultReport.model_validate_json(message.payload) == printed
        # And the outbox lives next to the state file
        assert (state.parent / "devices" / "dev-cli-1.sqlite3").exists()
    finally:
        recorder.stop()


def test_device_fault_without_a_broker_fails_in_one_line_and_keeps_the_fault(
    mosquitto: MosquittoBroker, tmp_path: Path, capsys
):
    # Given the broker is down
    mosquitto.stop()
    outbox = tmp_path / "outbox"
    # When a fault is raised from the command line
    code = run_command(
        "device", "fault", "--thing", "dev-cli-2", "--code", "FAN-STALL",
        "--broker", mosquitto.url, "--outbox-dir", str(outbox), "--wait-ack", "1",
    )  # fmt: skip
    # Then the command fails with one line saying where the fault waits
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "\n" not in err and "not acknowledged" in err and "dev-cli-2.sqlite3" in err
    # And the next run, with the broker back, delivers it before its own fault
    mosquitto.start()
    recorder = Recorder(mosquitto.url, "cli-probe-2", ["dt/aftercare/+/fault"]).start()
    try:
        assert run_command(
            "device", "fault", "--thing", "dev-cli-2", "--code", "NET-DOWN",
            "--broker", mosquitto.url, "--outbox-dir", str(outbox),
        ) == 0  # fmt: skip
        codes = [json.loads(m.payload)["code"] for m in recorder.take(2)]
        assert codes == ["FAN-STALL", "NET-DOWN"]
    finally:
        recorder.stop()


def test_device_fault_hands_over_to_a_running_device_which_can_then_remedy_it(
    mosquitto: MosquittoBroker, tmp_path: Path, capsys
):
    # Given `device run` in the foreground of another process, able to fix PSU-OVERVOLT
    outbox = str(tmp_path / "outbox")
    recorder = Recorder(
        mosquitto.url,
        "cli-probe-3",
        ["dt/aftercare/+/fault", "cmd/aftercare/dev-cli-3/diagnostics/res"],
    ).start()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    device = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "device", "run", "--thing", "dev-cli-3",
         "--broker", mosquitto.url, "--outbox-dir", outbox, "--remote-fixable", "PSU-OVERVOLT"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        lock = tmp_path / "outbox" / "dev-cli-3.lock"
        deadline = time.monotonic() + 15
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        # When a fault for the same thing is raised from the command line
        code = run_command(
            "device", "fault", "--thing", "dev-cli-3", "--code", "PSU-OVERVOLT",
            "--broker", mosquitto.url, "--outbox-dir", outbox,
        )  # fmt: skip
        # Then the running device publishes it and the command reports success
        assert code == 0
        printed = FaultReport.model_validate_json(capsys.readouterr().out)
        (message,) = recorder.take(1)
        assert json.loads(message.payload)["fault_id"] == printed.fault_id
        # And a remote reset reaches the running device, which fixes the fault
        recorder.publish(
            "cmd/aftercare/dev-cli-3/diagnostics/req",
            json.dumps(
                {
                    "request_id": "req-cli-0001",
                    "routine": "reset_component",
                    "params": {"code": "PSU-OVERVOLT"},
                    "expires_at": "2999-01-01T00:00:00Z",
                }
            ).encode(),
        )
        (answer,) = recorder.take(1)
        assert json.loads(answer.payload)["remedied"] is True
    finally:
        recorder.stop()
        device.send_signal(signal.SIGTERM)
        output, _ = device.communicate(timeout=20)
    # And SIGTERM stops the device cleanly
    assert device.returncode == 0, output.decode()
