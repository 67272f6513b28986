"""`make bench`: the local stack under open-loop fault load, every figure against a reference
measured in the same run; prints a table and writes `bench/results.json`.

    python -m infra.bench.run [--rates 5,20,50,100] [--seconds 10] [--search-s 90]

Environment defaults (what `make bench` passes on): BENCH_RATES, BENCH_SECONDS, BENCH_SEARCH_S
(seconds each series may spend probing for the saturation point after its fixed rates; 0: no
probes), BENCH_COLDSTART_RUNS (0 skips cold starts), BENCH_NOTE (free text kept in the
results' metadata), BENCH_SQS_CONCURRENCY (the stacks' `local up --sqs-concurrency`, space-
separated; empty: its default), BENCH_INCIDENT_THRESHOLD (the stacks' template parameter
`IncidentThresholdDevices`: the load is distinct faults of a few codes on one model, which
crosses `incidents.yaml`'s storm threshold within seconds, so by default the threshold is set out
of reach and the bench measures the per-device path; 0 keeps the policy's and measures storms),
BENCH_FAULT_PATH (0 skips the fault-path-only series: a quicker before/after of the whole stack).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.bench import capture, fleet
from infra.bench.load import PhasePlan, idle_background, run_phase, wait_quiet
from infra.bench.report import render
from infra.bench.scenarios import measure_capacity
from infra.bench.stats import next_probe, overloaded, saturation_point, sustained
from infra.local.cli import parse_sqs_concurrency
from infra.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results.json"
INJECT = Path(__file__).resolve().parent / "inject"
FAULT_PATH = ("FaultIntakeFunction", "DeadLetterRecorderFunction")
IDLE_S = 3.0
PROBE_CEILING = 400.0
OUT_OF_REACH = 10_000_000  # devices: no bench load opens a fleet incident
MAX_PROBES = 3
SETTLE_LIMIT_S = 45.0
TRACER = "tracer-on"  # the template's setting (Tracing: Active)
WALL = "wall"  # cold start clocks (infra.coldstart.CLOCKS): import + init, wall time
WHOLE_PROCESS = "process-cpu"  # ...and the whole process's CPU time

log = logging.getLogger("infra.bench")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m infra.bench.run", description=__doc__)
    parser.add_argument("--rates", default=env("BENCH_RATES", "5,20,50,100"))
    parser.add_argument("--seconds", type=float, default=float(env("BENCH_SECONDS", "10")))
    parser.add_argument("--search-s", type=float, default=float(env("BENCH_SEARCH_S", "90")))
    parser.add_argument("--coldstart-runs", type=int, default=int(env("BENCH_COLDSTART_RUNS", "3")))
    parser.add_argument("--note", default=env("BENCH_NOTE", ""))
    parser.add_argument(
        "--incident-threshold",
        type=int,
        default=int(env("BENCH_INCIDENT_THRESHOLD", str(OUT_OF_REACH))),
        help="the stacks' IncidentThresholdDevices (0: incidents.yaml's threshold, storm path)",
    )
    parser.add_argument(
        "--no-fault-path",
        dest="fault_path",
        action="store_false",
        default=env("BENCH_FAULT_PATH", "1") != "0",
        help="skip the fault-path-only series (its stack and load phases)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--capacity-only",
        action="store_true",
        help="only the DynamoDB capacity scenarios (one stack, 9 faults): replaces "
        "`capacity_units` in --out and keeps its load figures, noting when and what was measured",
    )
    args = parser.parse_args(argv)
    args.rate_list = sorted(float(r) for r in str(args.rates).split(",") if r.strip())
    return args


@contextmanager
def running_stack(
    only: Sequence[str] | None, capture_dir: Path | None, incident_threshold: int
) -> Iterator[tuple[dict[str, Any], Path]]:
    """A fresh local stack in a temporary state directory; with `capture_dir`, its processes
    record their DynamoDB requests there (switched on and off by the capacity scenarios)."""
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", capture.CAPTURE_VARIABLE)}
    state_dir = Path(tempfile.mkdtemp(prefix="aftercare-bench-"))
    if capture_dir is not None:
        capture_dir.mkdir(parents=True, exist_ok=True)
        os.environ[capture.CAPTURE_VARIABLE] = str(capture_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(INJECT), saved["PYTHONPATH"]]))
    try:
        stack = LocalStack(
            ROOT,
            state_dir,
            seed=False,
            only_functions=only,
            param_overrides={"IncidentThresholdDevices": str(incident_threshold)},
            sqs_concurrency=parse_sqs_concurrency(
                os.environ.get("BENCH_SQS_CONCURRENCY", "").split()
            ),
        )
    finally:
        for key, value in saved.items():  # the harness's own clients stay unhooked
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        with stack:
            assert stack.state is not None
            yield stack.state, state_dir
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@dataclass(frozen=True)
class Series:
    """One stack's load phases: where to send them and what to expect downstream."""

    state: dict[str, Any]
    state_dir: Path
    tag: str
    downstream: bool  # notifications and diagnostics run (the whole stack)


def load_series(series: Series, args: argparse.Namespace) -> dict[str, Any]:
    """The fixed rates, then a search for the saturation point bounded by `--search-s`."""
    idle = idle_background(series.state, IDLE_S)
    phases: list[dict[str, Any]] = []

    def phase(rate: float) -> None:
        # A saturated phase leaves a backlog: the next one starts when the stack is idle again.
        settled_s = wait_quiet(series.state, idle, SETTLE_LIMIT_S)
        name = f"{series.tag}{len(phases)}"
        plan = PhasePlan(name, rate, args.seconds, max(15.0, 2 * args.seconds), series.downstream)
        log.info("phase %s: %g faults/s for %g s", name, rate, args.seconds)
        result = run_phase(series.state, series.state_dir, plan, idle)
        phases.append({**result, "settled_before_s": round(settled_s, 1)})

    skipped = []
    for rate in args.rate_list:
        if overloaded(phases):
            skipped.append(rate)
            continue
        phase(rate)
    search_ends = time.monotonic() + args.search_s
    for _ in range(MAX_PROBES):
        rate = _probe_rate(phases)
        # a probe takes its load time, its drain (at least 15 s) and settling
        if rate is None or time.monotonic() + 3 * args.seconds + 15 > search_ends:
            break
        phase(rate)
    return {
        "idle_requests_per_s": {op: round(v, 2) for op, v in sorted(idle.items())},
        "phases": sorted(phases, key=lambda p: p["rate"]),
        # Higher rates after one that lost most of its tickets only pile up backlog: not run.
        "skipped_rates": skipped,
        "saturation_rate": saturation_point(phases),
        "search_complete": _probe_rate(phases) is None,
        # how the bench devices sent their faults and answers: the cost model prices IoT Core
        # messaging only for what went through the broker
        "device_uplink": "basic_ingest" if fleet.stack_ingest(series.state_dir) else "broker",
    }


def _probe_rate(phases: list[dict[str, Any]]) -> float | None:
    ordered = sorted(phases, key=lambda p: p["rate"])
    good = [p["rate"] for p in ordered if sustained(p)]
    bad = [p["rate"] for p in ordered if not sustained(p)]
    if not good:
        return None
    low = max(good)
    high = min((r for r in bad if r > low), default=None)
    probe = next_probe(low, high, PROBE_CEILING)
    return None if probe is None or probe in {p["rate"] for p in phases} else probe


def cold_starts(runs: int) -> dict[str, Any]:
    """import + first-invocation init per function from the built artifacts, as a ratio to bare
    boto3 + one client, each start paired with a baseline start just before it (the packaging
    check's probe and pairing, infra.coldstart); from the same starts, `whole_process`: the
    whole processes' CPU time (interpreter start-up included, steadier on a busy machine)."""
    if runs <= 0:
        return {"skipped": "BENCH_COLDSTART_RUNS=0"}
    from infra.coldstart import interleaved_clocks
    from infra.lambda_build import PackagingError, Toolchain
    from infra.packaging import prepare

    try:
        runtime = prepare(ROOT / "template.yaml", Toolchain.find(None, None))
        measured = interleaved_clocks([("bench", runtime, TRACER)], runs, (WALL, WHOLE_PROCESS))
    except PackagingError as exc:
        return {"skipped": f"cold start figures could not be taken: {exc}"}

    def figures(clock: str) -> dict[str, Any]:
        base, by_key = measured[clock]
        return {
            "baseline_ms": round(base, 1),
            "functions": {
                lid: {"ms": round(figure.ms, 1), "ratio": round(figure.ratio, 2)}
                for (_label, lid, _mode), figure in by_key.items()
            },
        }

    return {
        "mode": TRACER,
        "runs": runs,
        **figures(WALL),
        "whole_process": {"clock": WHOLE_PROCESS, **figures(WHOLE_PROCESS)},
    }


def source_revision() -> str | None:
    """The commit measured, with `+dirty` when the work tree has changes (None outside git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": source_revision(),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "rates": args.rate_list,
        "seconds_per_rate": args.seconds,
        "search_s": args.search_s,
        "incident_threshold": args.incident_threshold,
        "fault_path_series": args.fault_path,
        "note": args.note,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {"meta": metadata(args)}
    capture_dir = Path(tempfile.mkdtemp(prefix="aftercare-bench-capture-"))
    with running_stack(None, capture_dir, args.incident_threshold) as (state, state_dir):
        results["capacity_units"] = measure_capacity(state, state_dir, capture_dir)
        shutil.rmtree(capture_dir, ignore_errors=True)
        full = Series(state, state_dir, "bench-f", downstream=True)
        results["full_stack"] = load_series(full, args)
    if args.fault_path:
        with running_stack(FAULT_PATH, None, args.incident_threshold) as (state, state_dir):
            fault_path = Series(state, state_dir, "bench-o", downstream=False)
            results["fault_path_only"] = load_series(fault_path, args)
    results["cold_start"] = cold_starts(args.coldstart_runs)
    results["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    return results


def capacity_only(args: argparse.Namespace) -> dict[str, Any]:
    """The capacity scenarios alone, merged into the results file already at `--out`."""
    results: dict[str, Any] = json.loads(args.out.read_text())
    capture_dir = Path(tempfile.mkdtemp(prefix="aftercare-bench-capture-"))
    with running_stack(None, capture_dir, args.incident_threshold) as (state, state_dir):
        results["capacity_units"] = measure_capacity(state, state_dir, capture_dir)
    shutil.rmtree(capture_dir, ignore_errors=True)
    results["capacity_units"]["measured"] = {
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": source_revision(),
        "note": args.note or "capacity scenarios only; load figures from the run in `meta`",
    }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    results = capacity_only(args) if args.capacity_only else run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    print(render(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
