"""The stack's supervision while it runs: a dead child is started again after its backoff.

Only the death of moto (its in-memory state is gone) or a crash loop fails the whole stack;
then `failure` names the culprit and `failure_reason` says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from infra.local.children import Child, Spawner, tail
from infra.local.supervisor import RestartPolicy, RestartRecord, exit_description

log = logging.getLogger("infra.local.stack")


class StackMonitor:
    """Restarts the dead children of `stages`; `on_restart` hears of every restart (scheduled:
    None, done: the new child) so the state file can follow."""

    def __init__(
        self,
        stages: list[list[Child]],
        spawner: Spawner,
        policy: RestartPolicy,
        on_restart: Callable[[Child | None], None],
    ) -> None:
        self._stages = stages
        self._spawner = spawner
        self._policy = policy
        self._on_restart = on_restart
        self.restarts = RestartRecord()
        self.failed = threading.Event()
        self.failure: str | None = None
        self.failure_reason: str | None = None

    def watch(
        self,
        stopped: threading.Event,
        stop_lock: threading.Lock,
        stopping: threading.Event,
        interval: float,
    ) -> None:
        """Restart dead children (after their backoff) until the stack stops or fails.

        The thread running this lives until the stack has stopped every child: the children
        it started get their parent-death signal when it ends (see `die_with_parent`).
        """
        while not stopped.wait(interval):
            with stop_lock:
                if stopping.is_set() or self.failed.is_set():
                    continue
                try:
                    self.supervise(time.monotonic())
                except Exception as exc:  # an unsupervised stack must not look healthy
                    log.exception("the supervisor's monitor failed")
                    self.fail("supervisor", f"the supervisor could not restart a process: {exc}")

    def supervise(self, now: float) -> None:
        for stage in self._stages:
            for index, child in enumerate(stage):
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        stage[index] = self._restart(child)
                    continue
                code = child.popen.poll()
                if code is not None and not self._died(child, code, now):
                    return

    def fail(self, name: str, reason: str) -> bool:
        log.error("%s", reason)
        self.failure, self.failure_reason = name, reason
        self.failed.set()
        return False

    def _died(self, child: Child, code: int, now: float) -> bool:
        """Schedule `child`'s restart; False (and the stack failed) when it must not restart."""
        cause = exit_description(code)
        log.error(
            "%s (pid %d) died (%s); %s ends with:\n%s",
            child.name,
            child.pid,
            cause,
            child.log_path,
            tail(child.log_path),
        )
        restarts = self.restarts.times(child.name)
        if child.name == "moto":
            return self.fail(
                child.name,
                f"moto (the AWS emulator) died ({cause}): the tables, queues and topics it held "
                "in memory are gone, so the whole stack stopped; start it again with "
                f"`aftercare local up` (moto's log: {child.log_path})",
            )
        if self._policy.crash_looping(restarts, now):
            return self.fail(
                child.name,
                f"{child.name} is crash-looping: it died again ({cause}) after "
                f"{self._policy.recent(restarts, now)} restarts within "
                f"{self._policy.window_s:.0f}s, so the whole stack stopped (its log: "
                f"{child.log_path})",
            )
        delay = self._policy.delay(restarts, now)
        self.restarts.add(child.name, code, now)
        child.restart_at = now + delay
        log.warning("restarting %s in %.1fs", child.name, delay)
        self._on_restart(None)
        return True

    def _restart(self, dead: Child) -> Child:
        child = self._spawner.respawn(dead)
        log.warning("restarted %s (pid %d, was %d)", child.name, child.pid, dead.pid)
        self._on_restart(child)
        return child
