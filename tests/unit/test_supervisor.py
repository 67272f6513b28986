"""The local stack's supervision rules: backoff, crash loops, one stack per state directory, no
orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.local.supervisor import (
    MARKER_VARIABLE,
    PidFile,
    RestartPolicy,
    RestartRecord,
    StackAlreadyRunning,
    SupervisorLock,
    clean_leftovers,
    exit_description,
    is_alive,
    marked_processes,
    read_pid_file,
    recorded_children,
)


def wait_until(probe, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.05)
    return False


def test_backoff_doubles_with_recent_restarts_up_to_the_maximum() -> None:
    policy = RestartPolicy(first_delay_s=0.5, max_delay_s=4.0, max_restarts=5, window_s=60)
    # Given restarts at 0, 10 and 20 seconds
    restarts = [0.0, 10.0, 20.0]
    # Then the next delay counts only those within the window, capped at the maximum
    assert policy.delay([], now=0) == 0.5
    assert policy.delay(restarts, now=30) == 4.0
    assert policy.delay(restarts, now=75) == 1.0  # only the one at 20 s is recent
    assert policy.delay(restarts, now=200) == 0.5


def test_crash_loop_is_more_restarts_than_allowed_within_the_window() -> None:
    policy = RestartPolicy(max_restarts=3, window_s=10)
    assert not policy.crash_looping([1.0, 2.0], now=5)
    assert policy.crash_looping([1.0, 2.0, 3.0], now=5)
    assert not policy.crash_looping([1.0, 2.0, 3.0], now=12.5)  # two have left the window


def test_restart_record_keeps_when_and_how_each_component_died() -> None:
    record = RestartRecord()
    record.add("FaultIntakeFunction", -9, now=1.0)
    record.add("FaultIntakeFunction", 1, now=2.0)
    assert [e["exit_code"] for e in record.by_name["FaultIntakeFunction"]] == [-9, 1]
    assert record.times("FaultIntakeFunction") == [1.0, 2.0]
    assert exit_description(-9) == "signal SIGKILL"
    assert exit_description(3) == "exit code 3"


def test_a_second_supervisor_is_refused_while_the_first_holds_the_state_dir(
    tmp_path: Path,
) -> None:
    # Given one supervisor holding the state directory (in another process)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from infra.local.supervisor import SupervisorLock, PidFile;"
            "lock = SupervisorLock(Path(sys.argv[1])); lock.acquire();"
            "PidFile(Path(sys.argv[1])).write();"
            "print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # When another tries to take it, it is refused with the holder's pid
        with pytest.raises(StackAlreadyRunning, match=f"supervisor pid {holder.pid}"):
            SupervisorLock(tmp_path).acquire()
        # And once the holder is SIGKILLed the directory is free again
        holder.kill()
        holder.wait()
        lock = SupervisorLock(tmp_path)
        lock.acquire()
        assert lock.held
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    # Given a supervisor-like parent that started a child with `die_with_parent` in a new session
    script = (
        "import subprocess, sys, time;"
        "from infra.local.supervisor import die_with_parent;"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True, preexec_fn=die_with_parent());"
        "print(child.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert is_alive(child)
    # When the parent is SIGKILLed
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # Then the child goes too
    assert wait_until(lambda: not is_alive(child)), f"orphan {child} survived"


def test_leftovers_are_found_by_pid_file_and_by_environment_marker(tmp_path: Path) -> None:
    # Given a dead stack's recorded child and an unrecorded one carrying the marker
    env = {**os.environ, MARKER_VARIABLE: str(tmp_path.resolve())}
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    recorded = subprocess.Popen(sleeper)
    unrecorded = subprocess.Popen(sleeper, env=env)
    try:
        pid_file = PidFile(tmp_path)
        pid_file.record("FaultIntakeFunction", recorded.pid)
        assert read_pid_file(tmp_path) is not None
        assert dict(recorded_children(tmp_path)) == {"FaultIntakeFunction": recorded.pid}
        assert wait_until(lambda: marked_processes(tmp_path) == [unrecorded.pid])
        # When the leftovers are cleaned
        cleaned = clean_leftovers(tmp_path, grace_s=5)
        # Then both were stopped
        assert recorded.wait(10) == -signal.SIGTERM
        assert unrecorded.wait(10) == -signal.SIGTERM
        assert len(cleaned) == 2
    finally:
        for process in (recorded, unrecorded):
            process.kill()
            process.wait()
