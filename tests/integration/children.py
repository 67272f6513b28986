"""Local-stack processes the integration tests start: `python -m <module> --spec-file <file>`
with fake AWS credentials, running once its first line on stdout says READY."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.aws import FAKE_CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]


def child_environment() -> dict[str, str]:
    """This process's environment with the fake credentials of tests/fakes/aws.py."""
    return dict(os.environ) | FAKE_CREDENTIALS


def spec_command(module: str, spec_file: Path) -> list[str]:
    return [sys.executable, "-m", module, "--spec-file", str(spec_file)]


@dataclass
class Child:
    process: subprocess.Popen[str]
    log: Path
    ready_line: str

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


def start_child(module: str, spec_file: Path, log: Path, *, log_mode: str = "w") -> Child:
    """Start `module` and wait (30 s at most) for its READY line; fail the test, with the
    child's stderr (`log`, opened with `log_mode`), if it says anything else or nothing."""
    process = subprocess.Popen(
        spec_command(module, spec_file),
        cwd=ROOT,
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=log.open(log_mode),
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
    try:
        line = lines.get(timeout=30)
    except queue.Empty:
        process.kill()
        pytest.fail(f"{module} never printed READY:\n{log.read_text()}")
    if not line.startswith("READY"):
        process.kill()
        pytest.fail(f"{module} printed {line!r} instead of READY:\n{log.read_text()}")
    return Child(process, log, line.strip())


def run_to_exit(module: str, spec_file: Path) -> subprocess.CompletedProcess[str]:
    """Run `module` expecting it to exit by itself (30 s at most); its output captured."""
    return subprocess.run(
        spec_command(module, spec_file),
        cwd=ROOT,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
