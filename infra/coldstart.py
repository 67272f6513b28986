"""Cold start figures, measured from the built artifacts in a runtime-like bare interpreter.

For each function: import + first-invocation init (``deps()``), median of `--runs` fresh
interpreters, as a ratio to ``import boto3`` + one client measured in the same run: every
function start is paired with a baseline start just before it and the ratio is the median of
those pairs, so a machine that gets busier or quieter during the run moves both sides alike. As in
Lambda, what ships as bytecode (the layer, the runtime's SDK) is read as such and the rest (the
function's own folder) is compiled at every start: the code folders are read-only. Then the
layer and artifact sizes (unzipped bytes) and the largest import self-times
(``python -X importtime``).

    python -m infra.coldstart --runs 5
    python -m infra.coldstart --runs 5 --against ../main/template.yaml   # A/B, same run
    python -m infra.coldstart --runs 5 --clock cpu   # CPU time: steadier on a shared machine
    python -m infra.coldstart --runs 5 --clock process-cpu process-wall   # whole processes
    python -m infra.coldstart --runs 3 --functions ServiceApiFunction KpiApiFunction  # a few
    python -m infra.coldstart --runs 3 --importtime reference ServiceApiFunction  # the profile

`--importtime` prints, instead of the ratios, where each start's import time goes, by package
(`infra.coldstart_profile`), for the functions named and for `reference` (the baseline start):
``-X importtime``'s lines, by default written by the probe in CPU time (`--import-clock wall`
for ``-X importtime`` itself).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from infra.coldstart_profile import REFERENCE, importtime_report
from infra.lambda_build import ROOT, PackagingError, Toolchain
from infra.packaging import (
    REGION,
    TRACER_MODES,
    Function,
    Runtime,
    layer_folders,
    prepare,
    run_probe,
    shadowing_warning,
    start_function,
)

TARGET_RATIO = 1.25  # issue 11: every function within 1.25x bare boto3 + one client


def folder_bytes(folder: Path) -> int:
    """Unzipped size: the sum of the files' sizes (no pruning, as deployed)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# What a start costs, by clock: "wall"/"cpu" time import + first-invocation init inside the
# process; "process-wall"/"process-cpu" the whole process (interpreter start-up, exec to exit),
# as a Lambda cold start also pays for the runtime's interpreter.
CLOCKS: Final = ("wall", "cpu", "process-wall", "process-cpu")


def _clocks(report: Mapping[str, Any]) -> dict[str, float]:
    return {
        "wall": float(report.get("import_ms", 0.0)) + float(report.get("init_ms", 0.0)),
        "cpu": float(report.get("cpu_ms", 0.0)),
        "process-wall": float(report.get("process_wall_ms", 0.0)),
        "process-cpu": float(report.get("process_cpu_ms", 0.0)),
    }


def baseline_samples(runtime: Runtime) -> dict[str, float]:
    """One fresh interpreter's `import boto3` + one client (ms by clock), the runtime's SDK
    only."""
    env = {"PATH": "/usr/bin:/bin", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    spec = {"paths": [str(runtime.site)], "handler": None}
    report, _ = run_probe(runtime.tools.python, spec, env, runtime.site, "-B")
    if not report.get("ok"):
        raise PackagingError(f"baseline failed: {report.get('error')}")
    return _clocks(report)


def baseline_sample(runtime: Runtime, clock: str = "wall") -> float:
    """One fresh interpreter's `import boto3` + one client (ms of `clock`)."""
    return baseline_samples(runtime)[clock]


def cold_start_samples(
    runtime: Runtime,
    function: Function,
    mode: str,
    *,
    compile_each_time: bool = True,
    check_modules: bool = True,
) -> dict[str, float]:
    """One fresh interpreter's import + first-invocation init of `function` (ms by clock)."""
    outcome, _ = start_function(
        runtime, function, mode, compile_each_time=compile_each_time, check_modules=check_modules
    )
    if not outcome.ok:
        raise PackagingError(f"{function.logical_id} ({mode}): {outcome.error}")
    return _clocks(vars(outcome))


def cold_start_sample(
    runtime: Runtime,
    function: Function,
    mode: str,
    *,
    compile_each_time: bool = True,
    check_modules: bool = True,
    clock: str = "wall",
) -> float:
    """One fresh interpreter's import + first-invocation init of `function` (ms of `clock`)."""
    return cold_start_samples(
        runtime, function, mode, compile_each_time=compile_each_time, check_modules=check_modules
    )[clock]


def baseline_ms(runtime: Runtime, runs: int) -> float:
    """Median of `import boto3` + one client in the same bare interpreter."""
    return statistics.median(baseline_sample(runtime) for _ in range(runs))


def cold_start_ms(
    runtime: Runtime, function: Function, mode: str, runs: int, *, compile_each_time: bool = True
) -> float:
    """Median of import + first-invocation init; without compiling, after one warm-up start."""
    if not compile_each_time:
        start_function(runtime, function, mode)
    return statistics.median(
        cold_start_sample(runtime, function, mode, compile_each_time=compile_each_time)
        for _ in range(runs)
    )


Key = tuple[str, str, str]  # (build label, function, mode)


@dataclass(frozen=True)
class Figure:
    """One (build, function, mode): median milliseconds and median ratio to the baseline start
    taken just before each of its starts (so a load spike moves both sides of a ratio)."""

    ms: float
    ratio: float


def interleaved_clocks(
    jobs: Sequence[tuple[str, Runtime, str]], runs: int, clocks: Sequence[str] = ("wall",)
) -> dict[str, tuple[float, dict[Key, Figure]]]:
    """By clock, the median baseline and a `Figure` per (build label, function, mode) of `jobs`
    (label, runtime, mode): `runs` rounds, each start paired with a baseline start right before
    it; every clock is read from the same starts. "cpu" clocks count CPU time instead of wall
    time: on a machine shared with other work, waiting for a core no longer counts."""
    base: dict[str, list[float]] = defaultdict(list)
    samples: dict[str, dict[Key, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for _ in range(runs):
        for label, runtime, mode in jobs:
            for function in runtime.functions:
                paired = baseline_samples(runtime)
                sample = cold_start_samples(runtime, function, mode, check_modules=False)
                for clock in clocks:
                    base[clock].append(paired[clock])
                    key = (label, function.logical_id, mode)
                    samples[clock][key].append((sample[clock], paired[clock]))
    return {
        clock: (
            statistics.median(base[clock]),
            {
                key: Figure(
                    ms=statistics.median(ms for ms, _ in pairs),
                    ratio=statistics.median(ms / paired for ms, paired in pairs),
                )
                for key, pairs in samples[clock].items()
            },
        )
        for clock in clocks
    }


def interleaved(
    jobs: Sequence[tuple[str, Runtime, str]], runs: int, clock: str = "wall"
) -> tuple[float, dict[Key, Figure]]:
    """`interleaved_clocks` for one clock."""
    return interleaved_clocks(jobs, runs, (clock,))[clock]


def _cell(figure: Figure | None) -> str:
    return "-" if figure is None else f"{figure.ms:.0f} ms {figure.ratio:.2f}"


def coldstart_tables(
    runtime: Runtime, runs: int, before: Runtime | None = None, clocks: Sequence[str] = ("wall",)
) -> tuple[list[str], dict[str, dict[Key, Figure]]]:
    """A markdown table per clock (before and after, each tracer mode, when `before` is given)
    and the figures behind them, all from the same starts."""
    jobs = [("after", runtime, mode) for mode in TRACER_MODES]
    jobs += [("before", before, mode) for mode in TRACER_MODES] if before else []
    measured = interleaved_clocks(jobs, runs, clocks)
    labels = ["before", "after"] if before else ["after"]
    columns = [(label, mode) for mode in TRACER_MODES for label in labels]
    head = "| function | " + " | ".join(
        f"{label + ', ' if before else ''}{mode.replace('-', ' ')}" for label, mode in columns
    )
    head += " | artifact bytes |"
    lines: list[str] = []
    for clock, (base, figures) in measured.items():
        lines += [
            f"{clock}: baseline import boto3 + one client = {base:.0f} ms (median; {runs} rounds,"
            " a baseline start before every function start, ratios the medians of those pairs)",
            "",
            head,
            "|" + "---|" * (head.count("|") - 1),
        ]
        for function in runtime.functions:
            lid = function.logical_id
            cells = [lid] + [_cell(figures.get((label, lid, mode))) for label, mode in columns]
            cells.append(str(folder_bytes(runtime.artifact(function))))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines, {clock: figures for clock, (_, figures) in measured.items()}


def coldstart_report(
    runtime: Runtime, runs: int, before: Runtime | None = None, clocks: Sequence[str] = ("wall",)
) -> str:
    """Ratios to the boto3 baseline, layer and artifact sizes, the largest import costs."""
    lines, by_clock = coldstart_tables(runtime, runs, before, clocks)
    for clock, figures in by_clock.items():
        over = sorted(
            f"{lid} ({mode})"
            for (label, lid, mode), figure in figures.items()
            if label == "after" and figure.ratio > TARGET_RATIO
        )
        lines += [f"over {TARGET_RATIO}x ({clock}): {', '.join(over) or 'none'}"]
    lines += [shadowing_warning(runtime)]
    for label, built in {"after": runtime, "before": before}.items():
        if built is None:
            continue
        for layer, folder in layer_folders(built).items():
            lines.append(f"layer {layer} ({label}): {folder_bytes(folder.parent)} bytes unzipped")
    for function in runtime.functions[:1] + [f for f in runtime.functions if "Api" in f.logical_id]:
        _, stderr = start_function(
            runtime, function, "tracer-off", flags=("-X", "importtime"), compile_each_time=True
        )
        top = list(import_costs(stderr).items())[:8]
        lines.append(f"\nlargest import self-times, {function.logical_id} (tracer off):")
        lines += [f"  {name:28} {ms:7.1f} ms" for name, ms in top]
    return "\n".join(lines)


_IMPORT_TIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(\s*)(\S+)")


def import_costs(importtime_log: str) -> dict[str, float]:
    """Self time (ms) per top-level package, from ``python -X importtime`` output."""
    costs: dict[str, float] = defaultdict(float)
    for match in _IMPORT_TIME.finditer(importtime_log):
        costs[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
    return dict(sorted(costs.items(), key=lambda item: -item[1]))


def only(runtime: Runtime, logical_ids: Sequence[str] | None) -> Runtime:
    """`runtime` with only the functions named (all of them without names)."""
    if not logical_ids:
        return runtime
    unknown = sorted(set(logical_ids) - {f.logical_id for f in runtime.functions})
    if unknown:
        raise PackagingError(f"no such function in the template: {', '.join(unknown)}")
    kept = [f for f in runtime.functions if f.logical_id in logical_ids]
    return dataclasses.replace(runtime, functions=kept)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.coldstart", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument(
        "--against", type=Path, help="template of another checkout: its figures side by side"
    )
    parser.add_argument("--sam", type=Path, help="sam executable (default .venv-sam/bin/sam)")
    parser.add_argument("--python", type=Path, help="python3.12 executable")
    parser.add_argument(
        "--clock",
        nargs="+",
        choices=CLOCKS,
        default=["wall"],
        help="one or more, from the same starts: cpu clocks are steadier on a busy machine; "
        "process-* measure the whole process (interpreter start-up included)",
    )
    parser.add_argument(
        "--functions", nargs="+", metavar="LOGICAL_ID", help="measure only these functions"
    )
    parser.add_argument(
        "--importtime",
        nargs="+",
        metavar="LOGICAL_ID",
        help="instead of the ratios: the -X importtime profile of these starts by package "
        f"('{REFERENCE}' for the baseline start), medians of --runs",
    )
    parser.add_argument(
        "--mode", choices=list(TRACER_MODES), default="tracer-off", help="with --importtime"
    )
    parser.add_argument(
        "--import-clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="with --importtime: each import's CPU time (default; steady on a shared machine) "
        "or -X importtime's own wall time",
    )
    args = parser.parse_args(argv)
    try:
        tools = Toolchain.find(args.sam, args.python)
        if args.importtime:
            built = prepare(args.template, tools)
            clock = args.import_clock
            print(importtime_report(built, args.importtime, args.runs, args.mode, clock=clock))
            return 0
        runtime = only(prepare(args.template, tools), args.functions)
        before = only(prepare(args.against, tools), args.functions) if args.against else None
        print(coldstart_report(runtime, args.runs, before, args.clock))
    except PackagingError as exc:
        print(f"cold start figures could not be taken: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
