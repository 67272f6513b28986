"""Stream positions that outlive a worker: one event source's checkpoints in a JSON file."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger("infra.local.worker")


class CheckpointFile:
    """One event source's settled positions (``{shard_id: sequence_number}``) and when its first
    poller started, in a JSON file: written (atomically) after every settled batch, read once
    when a poller starts.

    `first_started_at` is None for the first poller of the stack. A later (restarted) poller
    reads a shard it has no position for from TRIM_HORIZON, skipping, for a LATEST source, the
    records older than the first poller: what a LATEST reader would never have seen.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first_started_at: float | None = None
        self._started_at = time.time()
        self._positions: dict[str, str] = {}

    def load(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            self.first_started_at = float(loaded["started_at"])
            self._started_at = self.first_started_at
            self._positions = {str(k): str(v) for k, v in loaded["positions"].items()}
        except FileNotFoundError:
            self._write()  # the first poller: later ones know from when the stack was read
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("ignoring unreadable stream checkpoints in %s", self.path)
            self._write()
        return dict(self._positions)

    def save(self, shard_id: str, sequence: str) -> None:
        if self._positions.get(shard_id) != sequence:
            self._positions[shard_id] = sequence
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        document = {"started_at": self._started_at, "positions": self._positions}
        temporary.write_text(json.dumps(document), encoding="utf-8")
        os.replace(temporary, self.path)
