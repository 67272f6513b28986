"""One running agent per thing and outbox directory."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from devices.errors import AgentBusyError


class OwnershipLock:
    """An exclusive ``flock`` on ``<thing>.lock``: one running agent per thing and outbox dir."""

    def __init__(self, path: Path, thing: str) -> None:
        self._path = path
        self._thing = thing
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise AgentBusyError(
                f"another agent for thing {self._thing} is running (it holds {self._path})"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
