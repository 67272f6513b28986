"""local.json of one running stack: written once everything is up, kept in step with the
supervisor's restarts, removed when the stack stops (see `infra.local.stack_state`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.local.children import Child
from infra.local.stack_state import STATE_FILE, write_json_atomically
from infra.local.supervisor import process_start_ticks

log = logging.getLogger("infra.local.stack")


class StateRecord:
    """The state file of the stack in `state_dir`, and the document last written to it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE
        self.state: dict[str, Any] | None = None
        self._written = False

    def clear_stale(self) -> None:
        """A dead stack's file must not describe the stack now starting."""
        if self.path.exists():
            log.info("removing stale %s", self.path)
            self.path.unlink()

    def write(self, state: dict[str, Any]) -> dict[str, Any]:
        write_json_atomically(self.path, state)
        self._written = True
        self.state = state
        log.info("local stack up in %.2fs; state in %s", state["startup_seconds"], self.path)
        return state

    def restarted(self, child: Child | None, restarts: Mapping[str, Any]) -> None:
        """Keep the pids and restart counts in step with the supervision."""
        if self.state is None:
            return
        if child is not None:
            self.state["pids"][child.name] = child.pid
            self.state["process_start_ticks"][child.name] = process_start_ticks(child.pid)
        if self._written:
            self.state["restarts"] = restarts
            write_json_atomically(self.path, self.state)

    def remove(self) -> None:
        if self._written:
            self.path.unlink(missing_ok=True)
            self._written = False
