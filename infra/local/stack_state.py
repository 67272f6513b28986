"""The stack's state file (`<state_dir>/local.json`) and `aftercare local down` from another
shell: the supervisor first, then whatever the pid file, the state file or /proc still name."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from infra.local.basic_ingest import ingest_rules
from infra.local.children import STOP_GRACE_S
from infra.local.provision_context import ProvisionResult
from infra.local.supervisor import (
    PID_FILE,
    marked_processes,
    process_start_ticks,
    recorded_children,
    same_process,
    supervisor_alive,
    terminate_all,
)

log = logging.getLogger("infra.local.stack")

STATE_FILE: Final = "local.json"


def write_json_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Write `document` to `path` so readers see either the old file or the complete new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The state file of the stack recorded in `state_dir`, or None."""
    try:
        return dict(json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def stop_recorded_leftovers(state_dir: Path) -> list[str]:
    """Processes named by a dead stack's local.json (written before pid files existed)."""
    recorded = read_state(state_dir) or {}
    ticks = recorded.get("process_start_ticks", {})
    alive = {
        pid: name
        for name, pid in recorded.get("pids", {}).items()
        if same_process(pid, ticks.get(name))
    }
    terminate_all(list(alive), STOP_GRACE_S)
    return [f"{name} (pid {pid})" for pid, name in alive.items()]


def state_document(
    *,
    region: str,
    endpoint_url: str,
    mqtt_url: str,
    state_dir: Path,
    api_state: Mapping[str, Any],
    result: ProvisionResult,
    functions: dict[str, dict[str, Any]],
    pids: Mapping[str, int],
    startup_seconds: float,
    restarts: Mapping[str, Any],
    service_endpoints: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What local.json says about a stack that is up: where everything is, and its processes."""
    return {
        "region": region,
        "aws_endpoint_url": endpoint_url,
        # Services with a moto server of their own (the main endpoint forwards to it too).
        "aws_service_endpoints": dict(service_endpoints or {}),
        "mqtt_url": mqtt_url,
        "mqtt_ca_file": str(state_dir / "broker" / "ca.pem"),
        "devices_dir": str(state_dir / "devices"),
        **api_state,
        "resources": dict(result.resources),
        # where devices report by Basic Ingest (`aftercare device run` reads it)
        "ingest_rules": ingest_rules(result.resources),
        "functions": functions,
        "pids": dict(pids),
        "process_start_ticks": {
            "supervisor": process_start_ticks(os.getpid()),
            **{name: process_start_ticks(pid) for name, pid in pids.items()},
        },
        "supervisor_pid": os.getpid(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "startup_seconds": startup_seconds,
        "not_emulated": result.not_emulated,
        "logs_dir": str(state_dir / "logs"),
        "restarts": restarts,
    }


def down(state_dir: Path, grace_s: float = STOP_GRACE_S) -> list[str]:
    """Stop the stack recorded in `state_dir`; return the names of what was stopped.

    The supervisor (`local up`) is asked first, so it stops its children in order. Then every
    child it recorded (pid file, written as each child starts, so this works even when start-up
    was interrupted; or local.json) that is still the same process (same start time) is stopped
    directly, and last any process whose environment names this state directory.
    """
    state_dir = state_dir.resolve()
    state = read_state(state_dir) or {}
    stopped = []
    supervisor = supervisor_alive(state_dir) or _recorded_supervisor(state)
    if supervisor is not None:
        _signal_and_wait(supervisor, grace_s * 3)
        stopped.append("supervisor")
    ticks = state.get("process_start_ticks", {})
    children = dict(recorded_children(state_dir))
    children.update(
        {
            name: pid
            for name, pid in state.get("pids", {}).items()
            if name not in children and same_process(pid, ticks.get(name))
        }
    )
    for name, pid in reversed(list(children.items())):
        if same_process(pid, None):
            _signal_and_wait(pid, grace_s)
            stopped.append(name)
    stray = marked_processes(state_dir)
    terminate_all(stray, grace_s)
    stopped += [f"pid {pid}" for pid in stray]
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if supervisor_alive(state_dir) is None:
        (state_dir / PID_FILE).unlink(missing_ok=True)
    return stopped


def _recorded_supervisor(state: Mapping[str, Any]) -> int | None:
    pid = state.get("supervisor_pid")
    recorded_ticks = state.get("process_start_ticks", {}).get("supervisor")
    if pid != os.getpid() and same_process(pid, recorded_ticks):
        return int(pid)  # type: ignore[arg-type]  # same_process checked it is an int
    return None


def _signal_and_wait(pid: int, grace_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not same_process(pid, None):
            return
        time.sleep(0.05)
    log.warning("pid %d ignored SIGTERM for %.0fs; killing it", pid, grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
