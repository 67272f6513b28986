"""`make profile`: the whole local stack under a fixed fault rate with every process profiled;
writes `bench/profile.md` (CPU ms per fault by process from /proc, the top functions of the
costliest processes) and prints it.

    python -m infra.bench.profile [--rate 20] [--seconds 20] [--out bench/profile.md]

The stack starts as `make bench` starts it (the incident threshold out of reach: the per-device
path), with `AFTERCARE_PROFILE_DIR` (workers, IoT rules bridge: every thread) and
`AFTERCARE_MOTO_PROFILE_DIR` (moto servers: their serial work) pointing at one directory; the
processes write their dumps when the stack stops. Environment defaults: PROFILE_RATE,
PROFILE_SECONDS, PROFILE_PROCESSES (how many of the costliest processes get function tables),
PROFILE_TOP (rows per table).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.bench.load import PhasePlan, idle_background, run_phase, wait_quiet
from infra.bench.profile_report import ProfileRun, load_by_process, render
from infra.bench.run import (
    IDLE_S,
    OUT_OF_REACH,
    ROOT,
    SETTLE_LIMIT_S,
    running_stack,
    source_revision,
)
from infra.local.motoserver import PROFILE_VARIABLE as MOTO_PROFILE_VARIABLE
from infra.local.profiling import DUMP_SIGNAL, PROFILE_VARIABLE, pid_of

OUT = ROOT / "bench" / "profile.md"
DRAIN_FACTOR = 6  # the drain may take this many times the load time
DUMP_WAIT_S = 60.0
SELF_PROFILING = (b"infra.local.worker", b"infra.local.iotrule")

log = logging.getLogger("infra.bench")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m infra.bench.profile", description=__doc__)
    parser.add_argument("--rate", type=float, default=float(env("PROFILE_RATE", "20")))
    parser.add_argument("--seconds", type=float, default=float(env("PROFILE_SECONDS", "20")))
    parser.add_argument("--processes", type=int, default=int(env("PROFILE_PROCESSES", "6")))
    parser.add_argument("--top", type=int, default=int(env("PROFILE_TOP", "15")))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--dumps", type=Path, default=None, help="keep the processes' .prof files here"
    )
    parser.add_argument(
        "--phase-json", type=Path, default=None, help="also write the phase's figures here"
    )
    parser.add_argument(
        "--cpu-only",
        action="store_true",
        help="profilers off: only the CPU per fault by process, over the whole drain (a "
        "before/after that a window closing on a backlog cannot cut short)",
    )
    return parser.parse_args(argv)


@contextmanager
def profiling_environment(directory: Path) -> Iterator[None]:
    """The two profile switches set for the stack started inside the block (its children copy
    the environment when the stack is built), removed afterwards."""
    keys = (PROFILE_VARIABLE, MOTO_PROFILE_VARIABLE)
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(dict.fromkeys(keys, str(directory)))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def profile_phase(
    args: argparse.Namespace, directory: Path
) -> tuple[dict[str, Any], dict[str, int]]:
    """One fixed-rate phase on a profiled stack; the stack has stopped (dumps written) when
    this returns. Returns the phase's figures and the processes' pids by name.

    The profiled stack falls behind a rate the plain one keeps (cProfile about doubles its
    CPU), so the drain is long enough for the backlog (the phase ends as soon as every ticket
    and diagnostics result is in): the CPU figures are then per fault of the whole load.
    The stack stops once moto serves only the idle pollers again and every profiled process
    has written its dump (`collect_dumps`)."""
    switches = nullcontext() if args.cpu_only else profiling_environment(directory)
    with switches, running_stack(None, None, OUT_OF_REACH) as (state, state_dir):
        idle = idle_background(state, IDLE_S)
        wait_quiet(state, idle, SETTLE_LIMIT_S)
        drain_s = max(60.0, DRAIN_FACTOR * args.seconds)
        plan = PhasePlan("profile", args.rate, args.seconds, drain_s, True)
        log.info("profiling: %g faults/s for %g s", args.rate, args.seconds)
        phase = run_phase(state, state_dir, plan, idle)
        wait_quiet(state, idle, SETTLE_LIMIT_S)
        pids = dict(state["pids"])
        if not args.cpu_only:
            missing = collect_dumps(directory, pids)
            if missing:
                log.warning("no profile written in time by: %s", ", ".join(missing))
    return phase, pids


def _profiles_itself(pid: int) -> bool:
    """A worker or the IoT rules bridge (`infra.local.profiling`), by its command line."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(module in command for module in SELF_PROFILING)


def collect_dumps(directory: Path, pids: Mapping[str, int]) -> list[str]:
    """Ask every self-profiling process for its dump (`DUMP_SIGNAL`) and wait for the files,
    before the stack stops: a worker still busy at the stop is killed after the grace period,
    its dump unwritten. Returns the processes that wrote none within `DUMP_WAIT_S`."""
    waiting = {name: pid for name, pid in pids.items() if _profiles_itself(pid)}
    for pid in waiting.values():
        with suppress(ProcessLookupError):
            os.kill(pid, DUMP_SIGNAL)
    deadline = time.monotonic() + DUMP_WAIT_S
    while waiting and time.monotonic() < deadline:
        time.sleep(0.5)
        written = {pid_of(path) for path in directory.glob("*.prof")}
        waiting = {name: pid for name, pid in waiting.items() if pid not in written}
    return sorted(waiting)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="aftercare-profile-"))
    try:
        phase, pids = profile_phase(args, directory)
        profiles = load_by_process(directory, pids)
        header = (
            f"Taken {datetime.now(UTC).isoformat(timespec='seconds')} at revision "
            f"{source_revision() or 'unknown'} on {os.cpu_count()} cores: {args.rate:g} "
            f"faults/s for {args.seconds:g} s, the whole stack (per-device path)"
            + (", profilers off." if args.cpu_only else ".")
        )
        report = render(
            ProfileRun(header, phase, profiles), processes=args.processes, limit=args.top
        )
    finally:
        if args.dumps is not None:
            shutil.copytree(directory, args.dumps, dirs_exist_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
    if args.phase_json is not None:
        args.phase_json.write_text(json.dumps({**phase, "pids": pids}, indent=2) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
