"""The local stack's child processes: how one is started, awaited, followed and stopped.

Children run in their own session, log to `<state_dir>/logs/`, are recorded in the pid file as
they start, and die with the supervisor however it dies (see `infra.local.supervisor`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from infra.local.supervisor import PidFile, die_with_parent, exit_description

log = logging.getLogger("infra.local.stack")

READY_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 5.0
LOG_TAIL_LINES: Final = 20


class LocalStackError(RuntimeError):
    """The local stack could not start (the message says which part and why)."""


@dataclass
class Child:
    """One process of the stack, its log file and (if it announces itself) its READY line."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)  # to start it again, on the same port
    pipe_stdout: bool = False
    restart_at: float | None = None  # dead, to be started again at this monotonic time
    ready_line: str | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def follow_stdout(self) -> None:
        """Read stdout in the background: take the READY line, append the rest to the log."""
        self._reader = threading.Thread(
            target=self._read_stdout, name=f"stdout-{self.name}", daemon=True
        )
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        with self.log_path.open("ab") as sink:
            for raw in self.popen.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if self.ready_line is None and line.startswith("READY"):
                    self.ready_line = line.removeprefix("READY").strip()
                    self._ready.set()
                else:
                    sink.write(raw)
                    sink.flush()

    def wait_ready(self, timeout: float, probe: Callable[[], bool] | None = None) -> str:
        """Block until READY (or `probe()` is true); raise if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.02) or (probe is not None and probe()):
                return self.ready_line or ""
            if self.popen.poll() is not None:
                raise LocalStackError(
                    f"{self.name} exited with code {self.popen.returncode} before it was ready; "
                    f"{self.log_path} ends with:\n{tail(self.log_path)}"
                )
        raise LocalStackError(
            f"{self.name} was not ready after {timeout:.0f}s; "
            f"{self.log_path} ends with:\n{tail(self.log_path)}"
        )

    def terminate(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.terminate()

    def kill_if_running(self, until: float) -> None:
        try:
            self.popen.wait(max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored SIGTERM; killing it", self.name, self.pid)
            self.popen.kill()
            self.popen.wait()
        if self._reader is not None:
            self._reader.join(timeout=1.0)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' if it does not exist)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip()
    except FileNotFoundError:
        return ""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def accepts_connections(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def child_environment(project_root: Path, region: str) -> dict[str, str]:
    """The environment of every child: dummy AWS credentials, never the caller's real ones."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "BOTO_")) or key == "AWS_CA_BUNDLE"
    }
    python_path = [str(project_root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's dummy credentials
        AWS_DEFAULT_REGION=region,
        AWS_REGION=region,
        AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(python_path),
    )
    return env


class Spawner:
    """Starts children from the project root with the stack's environment, logs and pid file."""

    def __init__(
        self, project_root: Path, logs_dir: Path, env: Mapping[str, str], pid_file: PidFile
    ) -> None:
        self._project_root = project_root
        self._logs_dir = logs_dir
        self._env = dict(env)
        self._pid_file = pid_file

    def extend_environment(self, values: Mapping[str, str]) -> None:
        """Add `values` to the environment of every child started from now on."""
        self._env.update(values)

    def spawn(self, name: str, argv: list[str], *, pipe_stdout: bool) -> Child:
        log_path = self._logs_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                argv,
                cwd=self._project_root,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else log_file,
                stderr=log_file,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, no locks
            )
        self._pid_file.record(name, popen.pid)
        child = Child(name=name, popen=popen, log_path=log_path, argv=argv, pipe_stdout=pipe_stdout)
        if pipe_stdout:
            child.follow_stdout()
        log.debug("started %s (pid %d): %s", name, popen.pid, " ".join(argv))
        return child

    def spawn_python(self, name: str, module: str, *args: str) -> Child:
        return self.spawn(name, [sys.executable, "-m", module, *args], pipe_stdout=True)

    def respawn(self, dead: Child) -> Child:
        """Start `dead` again as it was started (same argv, so the same port)."""
        with dead.log_path.open("a", encoding="utf-8") as sink:
            sink.write(
                f"---- {datetime.now(UTC).isoformat(timespec='milliseconds')} restarted by the "
                f"supervisor after {exit_description(dead.popen.returncode)} ----\n"
            )
        if dead._reader is not None:
            dead._reader.join(timeout=1.0)
        return self.spawn(dead.name, dead.argv, pipe_stdout=dead.pipe_stdout)


def stop_stage(children: list[Child]) -> None:
    """SIGTERM every running child of a stage, then SIGKILL what is left after the grace."""
    running = [child for child in children if child.restart_at is None]
    for child in running:
        child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in running:
        child.kill_if_running(deadline)
        log.info("stopped %s", child.name)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise LocalStackError(f"{url!r} names no port")
    return port
