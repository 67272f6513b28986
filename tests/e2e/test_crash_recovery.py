"""The local stack survives its own parts crashing: nothing lost, nothing doubled, nothing leaked.

Run alone with ``pytest -m crash tests/e2e/test_crash_recovery.py``. Each test starts its own
stack (with its own broker: the broker is one of the things killed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aftercare.domain.rules import load_catalog
from paho.mqtt.enums import CallbackAPIVersion

from devices.config import parse_broker_url
from infra.local.broker_auth import issue_device_credentials
from infra.local.stack import LocalStack
from infra.local.stack_state import read_state
from infra.local.supervisor import PID_FILE, RestartPolicy, marked_processes, read_pid_file
from infra.seeding import demo_devices
from tests.e2e.conftest import ROOT, Stack, http_api_functions, settle, wait_for
from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.crash,
    pytest.mark.skipif(not MOSQUITTO_BINARY.exists(), reason="mosquitto is not installed"),
]

DEVICES = demo_devices()[:6]
# Between the device seeing a PUBACK and the test's SIGKILL: generous, the machine is loaded.
BROKER_WINDOW_S = 0.3
FAST_RESTARTS = RestartPolicy(first_delay_s=0.2, max_delay_s=2.0, max_restarts=3, window_s=60)
# Each stack runs only the functions its test needs (every other kind of child still starts:
# both moto servers, the broker, the rule bridge, iot-data, the API server): the fault path,
# with FaultIntake's extra SQS consumers and the recorder that parks what reaches the DLQ (the
# burst test asserts nothing is parked), and for the burst the functions behind the HTTP API,
# which it kills and expects back. The other ~20 workers cost ~0.4 s of CPU each to start.
FAULT_PATH = ("FaultIntakeFunction", "DeadLetterRecorderFunction")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class Device:
    """Publishes faults like a device does: QoS 1, a persistent session, and every fault resent
    with the same fault_id until the broker acknowledges it."""

    def __init__(self, state: dict[str, Any]) -> None:
        # One client per device, each with its own certificate: the broker enforces the IoT
        # policy, so a device publishes only on its own topics.
        address = parse_broker_url(state["mqtt_url"])
        state_dir = Path(state["devices_dir"]).parent
        self.clients: dict[str, mqtt.Client] = {}
        for seeded in DEVICES:
            credentials = issue_device_credentials(state_dir, seeded.thing)
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=seeded.thing,
                clean_session=False,
            )
            credentials.configure(client)
            client.reconnect_delay_set(0.2, 1)
            client.connect(address.host, address.port)
            client.loop_start()
            self.clients[seeded.thing] = client
        self.catalog = load_catalog()
        self.published: list[str] = []
        self.acknowledged_at: dict[str, float] = {}
        self.resends = 0

    def fault(self, n: int) -> None:
        device = DEVICES[n % len(DEVICES)]
        fault_id = f"crash-{n:04d}"
        report = {
            "fault_id": fault_id,
            "code": self.catalog.codes_for_model(device.model)[n % 3],
            "occurred_at": datetime.now(UTC).isoformat(),
            "firmware": "1.0.0",
            "readings": {"n": n},
        }
        topic = f"dt/aftercare/{device.thing}/fault"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            info = self.clients[device.thing].publish(topic, json.dumps(report), qos=1)
            try:
                info.wait_for_publish(timeout=3)
                if info.is_published():
                    self.published.append(fault_id)
                    self.acknowledged_at[fault_id] = time.monotonic()
                    return
            except (RuntimeError, ValueError):  # not connected (the broker is down)
                time.sleep(0.3)
            self.resends += 1
        raise AssertionError(f"{fault_id} was never acknowledged")

    def close(self) -> None:
        for client in self.clients.values():
            client.loop_stop()
            client.disconnect()


def occurrences_by_fault(stack: Stack) -> Counter[str]:
    """How many ticket occurrences each crash-test fault_id produced."""
    counts: Counter[str] = Counter()
    for device in DEVICES:
        for ticket in stack.tickets.list_tickets(thing=device.thing):
            detail = stack.tickets.get_ticket(ticket.ticket_id)
            counts.update(o.fault_id for o in detail.occurrences if o.fault_id.startswith("crash-"))
    return counts


def stack_processes(state_dir: Path) -> list[int]:
    """Live processes that belong to the stack in `state_dir`: by the environment marker the
    supervisor gives its children, or by the state directory in their command line."""
    needle = str(state_dir.resolve()).encode()
    found = set(marked_processes(state_dir))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return sorted(found)


def describe(pids: list[int]) -> list[str]:
    described = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[:2]
        except OSError:
            continue
        described.append(f"{pid} {state} {cmdline.decode(errors='replace')[:120]}")
    return described


def nothing_left(state_dir: Path, timeout: float = 30.0) -> None:
    try:
        wait_for(lambda: not stack_processes(state_dir), timeout=timeout, what="no processes")
    except AssertionError:
        left = describe(stack_processes(state_dir))
        raise AssertionError(f"processes of {state_dir} still there: {left}") from None


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def restarted(stack: LocalStack, name: str, old_pid: int, times: int = 1) -> bool:
    state = read_state(stack.state_dir) or {}
    recorded = state.get("restarts", {}).get(name, [])
    pid = state.get("pids", {}).get(name)
    return len(recorded) >= times and pid != old_pid and Path(f"/proc/{pid}").exists()


def answers_http(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        return True  # any HTTP answer (401 without a token) means it serves
    except OSError:
        return False
    return True


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    stack = LocalStack(
        ROOT,
        tmp_path / "state",
        restart_policy=FAST_RESTARTS,
        only_functions=[*FAULT_PATH, *http_api_functions()],
    )
    try:
        state = stack.start()
        yield Stack(stack, broker=None, state=state)  # type: ignore[arg-type]
    finally:
        stack.stop()
    nothing_left(tmp_path / "state")


# --------------------------------------------------------------------------------------------
# Components crash while faults stream in
# --------------------------------------------------------------------------------------------


def test_each_component_crashing_mid_burst_loses_and_doubles_nothing(own_stack: Stack) -> None:
    stack = own_stack.stack
    pids = dict(own_stack.state["pids"])
    # Given a device streaming faults
    device = Device(own_stack.state)
    burst_done = threading.Event()
    failures: list[BaseException] = []

    def burst() -> None:
        try:
            for n in range(80):
                device.fault(n)
                time.sleep(0.05)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
        finally:
            burst_done.set()

    publisher = threading.Thread(target=burst, daemon=True)
    publisher.start()
    # When, mid-burst, each kind of component is SIGKILLed in turn (each restart awaited)
    victims = ["FaultIntakeFunction", "iot-rules", "mosquitto", "api-ServiceApi", "iot-data"]
    killed_at = {}
    for name in victims:
        time.sleep(0.7)
        killed_at[name] = time.monotonic()
        kill(pids[name])
        wait_for(lambda name=name: restarted(stack, name, pids[name]), timeout=60, what=name)
    assert burst_done.wait(120), "the burst did not finish"
    device.close()
    assert not failures, failures
    # Then every acknowledged fault produced exactly one occurrence: 0 doubled, and 0 lost but
    # for the broker's window (a fault it acknowledged in the instant before its SIGKILL, queued
    # for the bridge's session but not yet saved: see test_broker_durability)
    settle(own_stack, timeout=90)
    published = Counter(device.published)
    assert len(published) == 80

    def balanced() -> Counter[str] | None:
        counts = occurrences_by_fault(own_stack)
        return counts if counts == published else None

    lost: list[str] = []
    try:
        wait_for(balanced, timeout=60, interval=1.0, what="every fault to land once")
    except AssertionError:
        counts = occurrences_by_fault(own_stack)
        lost = sorted(set(published) - set(counts))
        doubled = sorted(f for f, c in counts.items() if c > 1)
        outside_window = [
            fault_id
            for fault_id in lost
            if abs(killed_at["mosquitto"] - device.acknowledged_at[fault_id]) > BROKER_WINDOW_S
        ]
        assert not doubled and not outside_window and len(lost) <= 1, (
            f"lost {lost} ({len(outside_window)} outside the broker's window), doubled {doubled}"
        )
    assert not [p for p in own_stack.parked.list() if "crash-" in json.dumps(p, default=str)]
    # And each restart is in the state file, on the same addresses as before
    state = read_state(stack.state_dir) or {}
    assert set(victims) <= set(state["restarts"])
    assert all(entry["exit_code"] == -signal.SIGKILL for entry in state["restarts"]["iot-rules"])
    assert state["mqtt_url"] == own_stack.state["mqtt_url"]
    assert answers_http(f"{state['api_url']}/tickets")
    assert answers_http(f"{state['iot_data_url']}/")
    print(f"restarts {state['restarts']}; device resends {device.resends}; lost {lost}")


def test_a_crash_looping_component_stops_the_stack_and_names_itself(own_stack: Stack) -> None:
    stack = own_stack.stack
    # When the same component dies more often than the policy allows
    for attempt in range(FAST_RESTARTS.max_restarts + 1):
        pid = (read_state(stack.state_dir) or {})["pids"]["iot-data"]
        kill(pid)
        if attempt < FAST_RESTARTS.max_restarts:
            wait_for(
                lambda pid=pid, n=attempt + 1: restarted(stack, "iot-data", pid, n),
                timeout=30,
                what=f"restart {attempt + 1}",
            )
    # Then the stack gives up, naming the component and why
    assert stack.wait(30) == "iot-data"
    assert stack.failure_reason is not None and "crash-looping" in stack.failure_reason


# --------------------------------------------------------------------------------------------
# `local up` itself dies; moto dies
# --------------------------------------------------------------------------------------------


class LocalUp:
    """`aftercare local up` in a subprocess, its output in files (a pipe nobody reads fills up)."""

    def __init__(self, state_dir: Path) -> None:
        env = {**os.environ, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}
        self.stderr_path = state_dir.with_name(f"up-{time.monotonic_ns()}.err")
        argv = [sys.executable, "-m", "infra.local.cli", "up", "--state-dir", str(state_dir)]
        argv += [arg for function in FAULT_PATH for arg in ("--only", function)]
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [*argv, "--no-seed"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.pid = self.process.pid

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def local_up(state_dir: Path) -> LocalUp:
    return LocalUp(state_dir)


def children_started(state_dir: Path) -> int:
    return len((read_pid_file(state_dir) or {}).get("children", {}))


def up_and_running(state_dir: Path, up: LocalUp) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        assert up.process.poll() is None, up.stderr[-2000:]
        return read_state(state_dir)

    return wait_for(ready, timeout=120, interval=0.5, what="local up")


def test_killing_local_up_during_or_after_start_up_leaves_no_process(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    # Given `local up` SIGKILLed during start-up, with some children started
    first = local_up(state_dir)
    try:
        wait_for(lambda: children_started(state_dir) >= 3, timeout=60, what="children")
        assert read_state(state_dir) is None  # still starting
        kill(first.pid)
        first.wait(10)
        # Then none of its processes survives it
        nothing_left(state_dir)
        # When `local up` runs again on the same state directory, it starts
        second = local_up(state_dir)
        try:
            up_and_running(state_dir, second)
            # And a third beside it is refused, saying why
            third = local_up(state_dir)
            assert third.wait(60) == 1
            assert "already running" in third.stderr and str(second.pid) in third.stderr
            # When the running one is SIGKILLed after start-up
            kill(second.pid)
            second.wait(10)
            # Then nothing is left either, and `local down` has nothing to do but tidy up
            nothing_left(state_dir)
        finally:
            second.kill()
            second.wait()
    finally:
        first.kill()
        first.wait()
    down = subprocess.run(
        [sys.executable, "-m", "infra.local.cli", "down", "--state-dir", str(state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 0
    assert not (state_dir / PID_FILE).exists()


def test_moto_dying_stops_the_stack_loudly_and_completely(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    up = local_up(state_dir)
    try:
        state = up_and_running(state_dir, up)
        # When moto (the only holder of the stack's data) is killed
        kill(state["pids"]["moto"])
        # Then `local up` stops everything and says moto died and its data is gone
        assert up.wait(60) == 1
        stderr = up.stderr
        assert "moto (the AWS emulator) died (signal SIGKILL)" in stderr
        assert "in memory are gone" in stderr
        nothing_left(state_dir)
        assert read_state(state_dir) is None
    finally:
        up.kill()
        up.wait()
