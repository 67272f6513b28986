"""Measure the job flow on a fresh local stack (a benchmark, not a test; prints figures).

    AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled .venv/bin/python -m tests.e2e.measure_visits [N]

N visits (default 20), one device each: an engineer's en_route / on_site / completed POSTs
through the API gateway (latency of each), then completed -> ticket resolved by the device's
verification self-test over MQTT (the closure's round trip), then GET /me/jobs.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from infra.local.stack import LocalStack
from tests.e2e.test_diagnostics_api import NO_AUTO, Env
from tests.e2e.test_field_visits import ROOT, Visit, ticket_in


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def show(name: str, values: list[float]) -> None:
    print(
        f"{name:<34} n={len(values):>3}  p50 {statistics.median(values):7.1f} ms"
        f"  p95 {pct(values, 95):7.1f} ms  max {max(values):7.1f} ms"
    )


def main(count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="measure-visits-"))
    stack = LocalStack(ROOT, workdir / "state", schedule_seconds={"DiagnosticsSweeperFunction": 1})
    try:
        env = Env(stack.start(), workdir / "state", workdir / "outbox")
        ada = env.api("eng-ada")
        posts: dict[str, list[float]] = {"en_route": [], "on_site": [], "completed": []}
        closure: list[float] = []
        for n in range(count):
            visit = Visit(env, ada, f"rt-x-{129 + 4 * n:04d}", slot=4 + n)
            for status in ("en_route", "on_site", "completed"):
                if status == "completed":
                    visit.agent.state.clear([NO_AUTO])
                started = time.perf_counter()
                code, _ = visit.report(ada, status)
                posts[status].append((time.perf_counter() - started) * 1000)
                assert code == 200, (status, code)
            started = time.perf_counter()
            ticket_in(ada, visit.ticket["ticket_id"], "resolved")
            closure.append((time.perf_counter() - started) * 1000)
        jobs = []
        for _ in range(count):
            started = time.perf_counter()
            ada.get("/me/jobs")
            jobs.append((time.perf_counter() - started) * 1000)
        for status, values in posts.items():
            show(f"POST /bookings/{{id}}/status {status}", values)
        show("completed -> resolved (verified)", closure)
        show(f"GET /me/jobs ({count} jobs)", jobs)
        for agent in env.agents:
            agent.stop(drain_timeout=2)
    finally:
        stack.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
