"""What keeps the local stack's processes alive, and what keeps them from outliving it.

* `RestartPolicy`: a crashed component is started again after a backoff (like Lambda starts a new
  instance, or IoT Core reconnects), unless it crash-loops: more than `max_restarts` restarts
  within `window_s` seconds stops the whole stack instead.
* `die_with_parent`: every child asks the kernel for SIGKILL when the supervisor dies
  (`PR_SET_PDEATHSIG`), so a SIGKILLed `local up` leaves nothing behind, even mid-start-up.
* `SupervisorLock` and the pid file (`supervisor.json`, written before the first child starts
  and after every (re)start): one supervisor per state directory, and `local down` can find
  every child even when start-up was interrupted.
* `MARKER_VARIABLE`: every child's environment names its state directory, so the processes of a
  stack can be found in /proc even without any file (`marked_processes`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

log = logging.getLogger(__name__)

PID_FILE: Final = "supervisor.json"
LOCK_FILE: Final = "supervisor.lock"
MARKER_VARIABLE: Final = "AFTERCARE_LOCAL_STACK"
_PR_SET_PDEATHSIG: Final = 1
_EXIT_PARENT_GONE: Final = 97
# Resolved in the supervisor: after fork(), the child may only call what is already loaded.
_LIBC: Final = ctypes.CDLL(None, use_errno=True)


# --------------------------------------------------------------------------------------------
# Restarts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff between restarts of one component, and when restarting is no longer the answer."""

    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_restarts: int = 5
    window_s: float = 60.0

    def recent(self, restarts: Sequence[float], now: float) -> int:
        """How many of the restarts (monotonic times) fall within the window before `now`."""
        return sum(1 for at in restarts if now - at <= self.window_s)

    def delay(self, restarts: Sequence[float], now: float) -> float:
        """Wait before the next restart: doubles with every recent restart, up to the maximum."""
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** self.recent(restarts, now)))

    def crash_looping(self, restarts: Sequence[float], now: float) -> bool:
        """True once another restart would exceed `max_restarts` within the window."""
        return self.recent(restarts, now) >= self.max_restarts


@dataclass
class RestartRecord:
    """The restarts of every component, as the state file shows them."""

    by_name: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, exit_code: int | None, now: float) -> None:
        self._times.setdefault(name, []).append(now)
        entry = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "exit_code": exit_code}
        self.by_name.setdefault(name, []).append(entry)

    def times(self, name: str) -> list[float]:
        return self._times.get(name, [])


def exit_description(code: int | None) -> str:
    """'exit code 3' or 'signal SIGKILL' for a Popen return code."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


# --------------------------------------------------------------------------------------------
# Children die with the supervisor
# --------------------------------------------------------------------------------------------


def die_with_parent() -> Callable[[], None]:
    """A Popen `preexec_fn`: SIGKILL this child when the supervisor dies.

    The kernel sends the signal when the *thread* that forked the child ends, so children must be
    started from threads that live as long as the supervisor (the main thread, the monitor).
    SIGKILL, not SIGTERM: nobody supervises an orderly shutdown any more, and a worker stopping
    gracefully can wait half a minute on a moto server that is going away. What must survive a
    crash survives SIGKILL (Mosquitto saves on every change, SQS batches are leased, stream
    positions are checkpointed); moto's in-memory state is lost either way.
    """
    parent = os.getpid()
    prctl = _LIBC.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl: nobody would tell us
            os._exit(_EXIT_PARENT_GONE)

    return preexec


# --------------------------------------------------------------------------------------------
# Finding a stack's processes
# --------------------------------------------------------------------------------------------


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), to tell a process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 else None


def is_alive(pid: int) -> bool:
    """True for a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def same_process(pid: object, ticks: object) -> bool:
    """True when `pid` is alive and (if `ticks` is known) is still the process recorded."""
    if not isinstance(pid, int) or not is_alive(pid):
        return False
    return ticks is None or process_start_ticks(pid) == ticks


def marker(state_dir: Path) -> str:
    return f"{MARKER_VARIABLE}={state_dir.resolve()}"


def marked_processes(state_dir: Path) -> list[int]:
    """Pids of live processes whose environment carries this state directory's marker."""
    needle = marker(state_dir).encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes() + b"\0"
        except OSError:
            continue
        if needle in environ and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def terminate_all(pids: Sequence[int], grace_s: float) -> list[int]:
    """SIGTERM `pids`, SIGKILL whatever still runs after `grace_s`; return the pids signalled."""
    signalled = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_alive(pid) for pid in signalled):
        time.sleep(0.05)
    for pid in signalled:
        if is_alive(pid):
            log.warning("pid %d ignored SIGTERM for %.0fs; killing it", pid, grace_s)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return signalled


# --------------------------------------------------------------------------------------------
# One supervisor per state directory
# --------------------------------------------------------------------------------------------


class StackAlreadyRunning(RuntimeError):
    """Another `local up` holds this state directory."""


class SupervisorLock:
    """An exclusive flock on `<state_dir>/supervisor.lock`, held while the supervisor lives.

    The kernel releases it when the supervisor dies however it dies, so a held lock means a live
    stack and a free one means any leftovers are a dead stack's.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StackAlreadyRunning(self._holder_description()) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def _holder_description(self) -> str:
        recorded = read_pid_file(self.path.parent)
        pid = recorded.get("supervisor_pid", "?") if recorded else "?"
        return (
            f"a local stack is already running from {self.path.parent} (supervisor pid {pid}); "
            "stop it with `aftercare local down` first"
        )

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the only descriptor releases the flock
            self._handle = None


@dataclass
class PidFile:
    """`<state_dir>/supervisor.json`: the supervisor and every child it started, as they start."""

    state_dir: Path
    children: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.state_dir / PID_FILE

    def write(self) -> None:
        document = {
            "supervisor_pid": os.getpid(),
            "supervisor_start_ticks": process_start_ticks(os.getpid()),
            "children": self.children,
        }
        temporary = self.path.with_name(f".{PID_FILE}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)

    def record(self, name: str, pid: int) -> None:
        self.children[name] = {"pid": pid, "start_ticks": process_start_ticks(pid)}
        self.write()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_pid_file(state_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((state_dir / PID_FILE).read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return None


def recorded_children(state_dir: Path) -> Iterator[tuple[str, int]]:
    """(name, pid) of the recorded children that are still the processes recorded, newest last."""
    recorded = read_pid_file(state_dir) or {}
    children: Mapping[str, Any] = recorded.get("children", {})
    for name, child in children.items():
        if same_process(child.get("pid"), child.get("start_ticks")):
            yield name, int(child["pid"])


def supervisor_alive(state_dir: Path) -> int | None:
    """The recorded supervisor's pid if it still runs."""
    recorded = read_pid_file(state_dir) or {}
    pid = recorded.get("supervisor_pid")
    if pid != os.getpid() and same_process(pid, recorded.get("supervisor_start_ticks")):
        return int(pid)  # type: ignore[arg-type]  # same_process checked it is an int
    return None


def clean_leftovers(state_dir: Path, grace_s: float) -> list[str]:
    """Stop what a dead stack left running in `state_dir`; return 'name (pid N)' for each."""
    leftovers = {pid: name for name, pid in recorded_children(state_dir)}
    leftovers.update({pid: leftovers.get(pid, "unrecorded") for pid in marked_processes(state_dir)})
    if not leftovers:
        return []
    terminate_all(sorted(leftovers, reverse=True), grace_s)
    return [f"{name} (pid {pid})" for pid, name in sorted(leftovers.items())]
