"""Where a cold start's import time goes: ``python -X importtime`` of a start, by package.

The ratio (`infra.coldstart`) says how far a function is from the 1.25x target; this says what
the distance is made of. Each start (the function's import + ``deps()`` from its built artifact
in the bare runtime, or the reference: ``import boto3`` + one client) runs `runs` times under
``-X importtime``; only the imports made after the probe's own start-up count (the probe marks
that point on stderr). A module's figures are the medians over the runs.

Every module belongs to a group by its top-level package (`GROUPS`; the function's own handler
module is `aftercare`'s). "self" is the time a group's own modules took; "pulled in" adds the
standard-library (and other) modules that the group imported first: `email`, `http` and
`urllib3` are botocore's cost whoever else needs them later.

    python -m infra.coldstart --importtime reference ServiceApiFunction FaultIntakeFunction
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from infra.lambda_build import PackagingError
from infra.packaging import REGION, Function, Runtime, run_probe, start_function

REFERENCE: Final = "reference"  # the baseline start: `import boto3` + one client
START_MARK: Final = "PROBE-START"  # written on stderr by the probe just before the start
OTHER: Final = "other"
GROUPS: Final[Mapping[str, tuple[str, ...]]] = {
    "boto3/botocore": ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "jmespath", "six"),
    "pydantic": ("pydantic", "pydantic_core", "annotated_types", "typing_extensions"),
    "aws_lambda_powertools": ("aws_lambda_powertools", "aws_xray_sdk", "wrapt"),
    "aftercare": ("aftercare",),
}

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Imported:
    """One module's line of ``-X importtime``: its own time, with its imports, and the group
    it is charged to (its own, or for an `OTHER` module the group of the import that pulled
    it in first)."""

    name: str
    self_ms: float
    cumulative_ms: float
    group: str
    charged_to: str


def group_of(module: str, own_modules: Iterable[str] = ()) -> str:
    """The group of `module` by its top-level package; `own_modules` (the handler's) are
    `aftercare`'s."""
    top = module.partition(".")[0]
    if top in own_modules:
        return "aftercare"
    return next((group for group, tops in GROUPS.items() if top in tops), OTHER)


def parse_importtime(log: str, own_modules: Iterable[str] = ()) -> list[Imported]:
    """The ``-X importtime`` lines of `log` after the probe's `START_MARK` (all of them when
    there is no mark), in the order the imports finished."""
    _, marked, after = log.partition(START_MARK)
    text = after if marked else log
    own = tuple(own_modules)
    lines = [
        (m.group(4), int(m.group(1)) / 1000, int(m.group(2)) / 1000, len(m.group(3)) // 2)
        for m in _LINE.finditer(text)
    ]
    # A module's line comes after its imports' lines: read backwards, each line's importer is
    # the nearest earlier-read line one level up.
    charged: dict[int, str] = {}
    stack: list[tuple[int, str]] = []  # (depth, group charged) of the importers open
    for index in range(len(lines) - 1, -1, -1):
        name, _, _, depth = lines[index]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        group = group_of(name, own)
        charged[index] = group if group != OTHER or not stack else stack[-1][1]
        stack.append((depth, charged[index]))
    return [
        Imported(name, self_ms, cumulative_ms, group_of(name, own), charged[index])
        for index, (name, self_ms, cumulative_ms, _) in enumerate(lines)
    ]


@dataclass(frozen=True)
class Profile:
    """Medians over the runs of one start's import profile."""

    label: str
    runs: int
    modules: dict[str, Imported]  # by name, figures the medians over the runs
    total_ms: float  # median of the runs' total self time (every import of the start)
    by_group: dict[str, float]  # median self time per group
    pulled_in: dict[str, float]  # median self time charged to each group
    cpu_ms: float  # median CPU time of the same starts (import + deps(), importtime included)


def profile_of(
    label: str, logs: Sequence[str], cpu: Sequence[float], own: Iterable[str]
) -> Profile:
    """Medians of the parsed `logs` (one per run) of the same start."""
    runs = [parse_importtime(log, own) for log in logs]
    if not runs or not runs[0]:
        raise PackagingError(f"{label}: no -X importtime output")
    by_name: dict[str, list[Imported]] = defaultdict(list)
    for run in runs:
        for module in run:
            by_name[module.name].append(module)
    modules = {
        name: Imported(
            name,
            statistics.median(m.self_ms for m in seen),
            statistics.median(m.cumulative_ms for m in seen),
            seen[0].group,
            seen[0].charged_to,
        )
        for name, seen in by_name.items()
    }

    def median_by(key: str) -> dict[str, float]:
        totals = []
        for run in runs:
            summed: dict[str, float] = defaultdict(float)
            for module in run:
                summed[getattr(module, key)] += module.self_ms
            totals.append(summed)
        groups = [*GROUPS, OTHER]
        return {group: statistics.median(t.get(group, 0.0) for t in totals) for group in groups}

    return Profile(
        label=label,
        runs=len(runs),
        modules=modules,
        total_ms=statistics.median(sum(m.self_ms for m in run) for run in runs),
        by_group=median_by("group"),
        pulled_in=median_by("charged_to"),
        cpu_ms=statistics.median(cpu) if cpu else 0.0,
    )


def _importtime_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


def reference_profile(runtime: Runtime, runs: int) -> Profile:
    """The baseline start (`import boto3` + one client) under ``-X importtime``."""
    spec = {"paths": [str(runtime.site)], "handler": None, "mark": START_MARK}
    logs, cpu = [], []
    for _ in range(runs):
        report, stderr = run_probe(
            runtime.tools.python, spec, _importtime_env(), runtime.site, "-B", "-X", "importtime"
        )
        if not report.get("ok"):
            raise PackagingError(f"reference start failed: {report.get('error')}")
        logs.append(stderr)
        cpu.append(float(report.get("cpu_ms", 0.0)))
    return profile_of(REFERENCE, logs, cpu, ())


def function_profile(runtime: Runtime, function: Function, runs: int, mode: str) -> Profile:
    """`function`'s start in `mode` under ``-X importtime``, its handler module as ours."""
    logs, cpu = [], []
    for _ in range(runs):
        outcome, stderr = start_function(
            runtime,
            function,
            mode,
            flags=("-X", "importtime"),
            compile_each_time=True,
            check_modules=False,
            mark=START_MARK,
        )
        if not outcome.ok:
            raise PackagingError(f"{function.logical_id} ({mode}): {outcome.error}")
        logs.append(stderr)
        cpu.append(outcome.cpu_ms)
    handler_module = function.handler.partition(".")[0]
    return profile_of(f"{function.logical_id} ({mode})", logs, cpu, (handler_module,))


def _ratio(ms: float, reference: Profile | None) -> str:
    return f"{ms / reference.total_ms:.2f}x" if reference and reference.total_ms else "-"


def render(profile: Profile, reference: Profile | None = None, top: int = 15) -> list[str]:
    """One start's profile as markdown: the groups, then the top modules by self and by
    cumulative time; "x ref" is a share of the reference start's total import time."""
    lines = [
        f"### {profile.label}",
        "",
        f"{profile.runs} runs, medians: imports {profile.total_ms:.1f} ms"
        f" ({_ratio(profile.total_ms, reference)} of the reference's imports);"
        f" CPU of import + deps() {profile.cpu_ms:.0f} ms (under -X importtime)",
        "",
        "| group | self ms | x ref | pulled in ms | x ref |",
        "|---|---:|---:|---:|---:|",
    ]
    for group in profile.by_group:
        own, pulled = profile.by_group[group], profile.pulled_in[group]
        lines.append(
            f"| {group} | {own:.1f} | {_ratio(own, reference)} | {pulled:.1f} |"
            f" {_ratio(pulled, reference)} |"
        )
    modules = list(profile.modules.values())
    for title, key in (("self", "self_ms"), ("cumulative", "cumulative_ms")):
        lines += ["", f"top {top} by {title} time:", "", "| module | group | self ms | cum ms |"]
        lines.append("|---|---|---:|---:|")
        for module in sorted(modules, key=lambda m: -getattr(m, key))[:top]:
            group = module.group if module.group != OTHER else f"other ({module.charged_to})"
            lines.append(
                f"| {module.name} | {group} | {module.self_ms:.1f} | {module.cumulative_ms:.1f} |"
            )
    return [*lines, ""]


def importtime_report(
    runtime: Runtime, names: Sequence[str], runs: int, mode: str = "tracer-off", top: int = 15
) -> str:
    """The profiles of `names` (logical ids, or `REFERENCE`), each next to the reference's."""
    by_id = {f.logical_id: f for f in runtime.functions}
    unknown = sorted(set(names) - set(by_id) - {REFERENCE})
    if unknown:
        raise PackagingError(f"no such function in the template: {', '.join(unknown)}")
    reference = reference_profile(runtime, runs)
    lines: list[str] = []
    for name in names:
        if name == REFERENCE:
            lines += render(reference, reference, top)
        else:
            lines += render(function_profile(runtime, by_id[name], runs, mode), reference, top)
    return "\n".join(lines)
