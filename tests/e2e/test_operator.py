"""The operator's path on the local stack: seed, users, provision a device, run its agent from
the written files, and a smoke run whose diagnostics hop that agent answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.cli import main
from tests.e2e.conftest import ROOT, Stack

THING = "smoke-e2e-1"
PASSWORD = "Operator-pass-1"


@pytest.fixture
def cli(local_stack: Stack, capsys: pytest.CaptureFixture[str]) -> Any:
    state = ["--state-dir", str(local_stack.stack.state_dir)]

    def run(*argv: str) -> tuple[int, Any, str]:
        code = main([*argv, *state])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out.strip().startswith(("{", "[")) else out, err

    return run


@pytest.fixture
def no_session_left(local_stack: Stack) -> Iterator[None]:
    yield
    (local_stack.stack.state_dir / "session.json").unlink(missing_ok=True)


def test_admin_seed_adds_the_smoke_customer_and_a_rerun_changes_nothing(cli: Any) -> None:
    code, first, err = cli("admin", "seed", "--demo-customers")
    assert code == 0, err
    # The local stack seeded the demo data already: only the smoke customer is new.
    assert first["created"] in ({"customer": 1}, {})
    assert first["unchanged"]["stock"] > 0
    code, second, _ = cli("admin", "seed", "--demo-customers")
    assert second["created"] == {}


def test_created_users_can_log_in(cli: Any, no_session_left: None) -> None:
    assert cli("admin", "seed")[0] == 0
    code, _, err = cli(
        "admin", "users", "create", "--username", "ops-eng", "--group", "engineers",
        "--password", PASSWORD,
    )  # fmt: skip
    assert code == 0, err
    code, session, err = cli("login", "--user", "ops-eng", "--password", PASSWORD, "--json")
    assert code == 0, err
    assert session["groups"] == ["engineers"]
    code, _, err = cli(
        "admin", "users", "create", "--username", "ops-cust", "--group", "customers",
        "--customer-id", "c-smoke", "--password", PASSWORD,
    )  # fmt: skip
    assert code == 0, err
    code, session, err = cli("login", "--user", "ops-cust", "--password", PASSWORD, "--json")
    assert code == 0 and session["customer_id"] == "c-smoke"


class Agent:
    """`aftercare device run --config …` in its own process, until it says it runs."""

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "device", "run", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.running = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if " running;" in line:
                self.running.set()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_a_provisioned_device_answers_the_smoke_run(cli: Any, tmp_path: Path) -> None:
    assert cli("admin", "seed")[0] == 0
    out = tmp_path / THING
    code, shown, err = cli(
        "devices", "provision", "--thing", THING, "--model", "AC-HP", "--customer", "c-smoke",
        "--region", "eu-west", "--out", str(out), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert shown["certificate_id"] and set(shown["files"]) == {
        "certificate",
        "private_key",
        "config",
        "root_ca",  # locally: the broker's own CA, which signed the device's certificate
    }
    assert (os.stat(shown["files"]["private_key"]).st_mode & 0o777) == 0o600

    agent = Agent(Path(shown["files"]["config"]))
    try:
        assert agent.running.wait(20), "".join(agent.lines)
        code, report, err = cli(
            "smoke", "--thing", THING, "--require-device", "--diag-timeout", "15", "--json"
        )
    finally:
        agent.stop()
    assert code == 0, (err, report, "".join(agent.lines[-20:]))
    assert report["ok"] is True
    hops = {h["name"]: h for h in report["hops"]}
    assert list(hops) == [
        "device_registered",
        "publish_fault",
        "ticket_opened",
        "notification_recorded",
        "api_ticket",
        "diagnostics",
        "cleanup",
    ]
    assert "skipped" not in hops["diagnostics"]
    code, ticket, _ = cli("tickets", "show", report["ticket_id"], "--json")
    assert ticket["status"] == "cancelled" and ticket["fault_code"] == "SMOKE-TEST"


def test_smoke_without_a_device_skips_diagnostics_unless_required(cli: Any, tmp_path: Path) -> None:
    assert cli("admin", "seed")[0] == 0
    thing = "smoke-e2e-offline"
    code, _, err = cli(
        "devices", "provision", "--thing", thing, "--model", "RT-X", "--customer", "c-smoke",
        "--region", "eu-west", "--out", str(tmp_path / thing),
    )  # fmt: skip
    assert code == 0, err
    code, report, _ = cli("smoke", "--thing", thing, "--diag-timeout", "5", "--json")
    assert code == 0 and report["ok"] is True
    diagnostics = next(h for h in report["hops"] if h["name"] == "diagnostics")
    assert "not connected" in diagnostics["skipped"]
    code, report, err = cli(
        "smoke", "--thing", thing, "--diag-timeout", "5", "--require-device", "--json"
    )
    assert code == 1 and report["ok"] is False
    assert "hop diagnostics failed" in err
    assert report["hops"][-1]["name"] == "cleanup" and report["hops"][-1]["ok"]
