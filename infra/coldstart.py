"""Cold start figures, measured from the built artifacts in a runtime-like bare interpreter.

For each function: import + first-invocation init (``deps()``), median of `--runs` fresh
interpreters, as a ratio to ``import boto3`` + one client measured in the same run. The runs
are interleaved (one baseline start, then one start of every function and mode, `--runs`
times), so a machine that gets busier or quieter during the run moves every figure alike. As in
Lambda, what ships as bytecode (the layer, the runtime's SDK) is read as such and the rest (the
function's own folder) is compiled at every start: the code folders are read-only. Then the
layer and artifact sizes (unzipped bytes) and the largest import self-times
(``python -X importtime``).

    python -m infra.coldstart --runs 5
    python -m infra.coldstart --runs 5 --against ../main/template.yaml   # A/B, same run
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

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


def baseline_sample(runtime: Runtime) -> float:
    """One fresh interpreter's `import boto3` + one client (ms), the runtime's SDK only."""
    env = {"PATH": "/usr/bin:/bin", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    spec = {"paths": [str(runtime.site)], "handler": None}
    report, _ = run_probe(runtime.tools.python, spec, env, runtime.site, "-B")
    if not report.get("ok"):
        raise PackagingError(f"baseline failed: {report.get('error')}")
    return float(report["import_ms"])


def cold_start_sample(
    runtime: Runtime,
    function: Function,
    mode: str,
    *,
    compile_each_time: bool = True,
    check_modules: bool = True,
) -> float:
    """One fresh interpreter's import + first-invocation init of `function` (ms)."""
    outcome, _ = start_function(
        runtime, function, mode, compile_each_time=compile_each_time, check_modules=check_modules
    )
    if not outcome.ok:
        raise PackagingError(f"{function.logical_id} ({mode}): {outcome.error}")
    return outcome.import_ms + outcome.init_ms


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


def interleaved(
    runtimes: dict[str, Runtime], modes: Sequence[str], runs: int
) -> tuple[float, dict[Key, float]]:
    """Median baseline and median cold start per (build, function, mode), every start of a
    round taken next to one baseline start."""
    base: list[float] = []
    samples: dict[Key, list[float]] = defaultdict(list)
    for _ in range(runs):
        base.append(baseline_sample(next(iter(runtimes.values()))))
        for label, runtime in runtimes.items():
            for function in runtime.functions:
                for mode in modes:
                    key = (label, function.logical_id, mode)
                    sample = cold_start_sample(runtime, function, mode, check_modules=False)
                    samples[key].append(sample)
    return statistics.median(base), {k: statistics.median(v) for k, v in samples.items()}


def _cell(ms: float | None, base: float) -> str:
    return "-" if ms is None else f"{ms:.0f} ms {ms / base:.2f}"


def coldstart_table(
    runtime: Runtime, runs: int, before: Runtime | None = None
) -> tuple[list[str], float, dict[Key, float]]:
    """The markdown table (after, and `before` when given) and the figures behind it."""
    runtimes = {"after": runtime} | ({"before": before} if before else {})
    base, medians = interleaved(runtimes, list(TRACER_MODES), runs)
    head = "| function | tracer off (ms, ratio) | tracer on (ms, ratio) | artifact bytes |"
    if before:
        head = "| function | before, tracer off | " + head.removeprefix("| function | ")
    lines = [
        f"baseline: import boto3 + one client = {base:.0f} ms (median of {runs}, interleaved)",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for function in runtime.functions:
        lid = function.logical_id
        cells = [lid]
        if before:
            cells.append(_cell(medians.get(("before", lid, "tracer-off")), base))
        cells += [_cell(medians[("after", lid, mode)], base) for mode in TRACER_MODES]
        cells.append(str(folder_bytes(runtime.artifact(function))))
        lines.append("| " + " | ".join(cells) + " |")
    return lines, base, medians


def coldstart_report(runtime: Runtime, runs: int, before: Runtime | None = None) -> str:
    """Ratios to the boto3 baseline, layer and artifact sizes, the largest import costs."""
    lines, base, medians = coldstart_table(runtime, runs, before)
    over = sorted(
        f"{lid} ({mode})"
        for (label, lid, mode), ms in medians.items()
        if label == "after" and ms / base > TARGET_RATIO
    )
    lines += ["", f"over {TARGET_RATIO}x: {', '.join(over) or 'none'}"]
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.coldstart", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument(
        "--against", type=Path, help="template of another checkout: its figures side by side"
    )
    parser.add_argument("--sam", type=Path, help="sam executable (default .venv-sam/bin/sam)")
    parser.add_argument("--python", type=Path, help="python3.12 executable")
    args = parser.parse_args(argv)
    try:
        tools = Toolchain.find(args.sam, args.python)
        runtime = prepare(args.template, tools)
        before = prepare(args.against, tools) if args.against else None
        print(coldstart_report(runtime, args.runs, before))
    except PackagingError as exc:
        print(f"cold start figures could not be taken: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
