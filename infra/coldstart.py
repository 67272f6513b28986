"""Cold start figures, measured from the built artifacts in a runtime-like bare interpreter.

For each function: import + first-invocation init (``deps()``), median of `--runs` fresh
interpreters, as a ratio to ``import boto3`` + one client measured in the same run. Sources are
compiled at every start, as in Lambda (sam ships no .pyc and the code folders are read-only);
the ".pyc" column is what shipping bytecode would give. Then the layer and artifact sizes
(unzipped bytes) and the largest import self-times (``python -X importtime``).

    python -m infra.coldstart --runs 5
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
    Function,
    Runtime,
    prepare,
    run_probe,
    shadowing_warning,
    start_function,
)


def folder_bytes(folder: Path) -> int:
    """Unzipped size: the sum of the files' sizes (no pruning, as deployed)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def baseline_ms(runtime: Runtime, runs: int) -> float:
    """Median of `import boto3` + one client in the same bare interpreter."""
    env = {"PATH": "/usr/bin:/bin", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    spec = {"paths": [str(runtime.site)], "handler": None}
    samples = []
    for _ in range(runs):
        report, _ = run_probe(runtime.tools.python, spec, env, runtime.site, "-B")
        if not report.get("ok"):
            raise PackagingError(f"baseline failed: {report.get('error')}")
        samples.append(float(report["import_ms"]))
    return statistics.median(samples)


def cold_start_ms(
    runtime: Runtime, function: Function, mode: str, runs: int, *, compile_each_time: bool = True
) -> float:
    """Median of import + first-invocation init; with bytecode, after one warm-up start."""
    if not compile_each_time:
        start_function(runtime, function, mode)
    samples = []
    for _ in range(runs):
        outcome, _ = start_function(runtime, function, mode, compile_each_time=compile_each_time)
        if not outcome.ok:
            raise PackagingError(f"{function.logical_id} ({mode}): {outcome.error}")
        samples.append(outcome.import_ms + outcome.init_ms)
    return statistics.median(samples)


_IMPORT_TIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(\s*)(\S+)")


def import_costs(importtime_log: str) -> dict[str, float]:
    """Self time (ms) per top-level package, from ``python -X importtime`` output."""
    costs: dict[str, float] = defaultdict(float)
    for match in _IMPORT_TIME.finditer(importtime_log):
        costs[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
    return dict(sorted(costs.items(), key=lambda item: -item[1]))


def coldstart_report(runtime: Runtime, runs: int) -> str:
    """Ratios to the boto3 baseline, artifact sizes and the largest import costs.

    "tracer off/on" compile every source at each start, as Lambda does with sam's artifacts
    (no .pyc, read-only code folders); "off, .pyc" is what shipping bytecode would give."""
    if next(runtime.build_dir.rglob("*.pyc"), None) is not None:
        raise PackagingError(f"{runtime.build_dir} holds .pyc files sam does not ship: rebuild")
    base = baseline_ms(runtime, runs)
    lines = [
        f"baseline: import boto3 + one client = {base:.0f} ms (median of {runs})",
        "",
        "| function | tracer off | ratio | tracer on | ratio | off, .pyc | ratio | bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for function in runtime.functions:
        off = cold_start_ms(runtime, function, "tracer-off", runs)
        on = cold_start_ms(runtime, function, "tracer-on", runs)
        pyc = cold_start_ms(runtime, function, "tracer-off", runs, compile_each_time=False)
        size = folder_bytes(runtime.artifact(function))
        lines.append(
            f"| {function.logical_id} | {off:.0f} ms | {off / base:.2f} | {on:.0f} ms "
            f"| {on / base:.2f} | {pyc:.0f} ms | {pyc / base:.2f} | {size} |"
        )
    layers = sorted({layer for function in runtime.functions for layer in function.layers})
    lines += ["", shadowing_warning(runtime)]
    lines += [f"layer {layer}: {folder_bytes(runtime.build_dir / layer)} bytes" for layer in layers]
    for function in runtime.functions[:1] + [f for f in runtime.functions if "Api" in f.logical_id]:
        _, stderr = start_function(
            runtime, function, "tracer-off", flags=("-X", "importtime"), compile_each_time=True
        )
        top = list(import_costs(stderr).items())[:8]
        lines.append(f"\nlargest import self-times, {function.logical_id} (tracer off):")
        lines += [f"  {name:28} {ms:7.1f} ms" for name, ms in top]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.coldstart", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--sam", type=Path, help="sam executable (default .venv-sam/bin/sam)")
    parser.add_argument("--python", type=Path, help="python3.12 executable")
    args = parser.parse_args(argv)
    try:
        runtime = prepare(args.template, Toolchain.find(args.sam, args.python))
        print(coldstart_report(runtime, args.runs))
    except PackagingError as exc:
        print(f"cold start figures could not be taken: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
