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
from typing import Any, Final

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
class Start:
    """One run of a start under ``-X importtime``: its log and its CPU time."""

    log: str
    cpu_ms: float


@dataclass(frozen=True)
class Profile:
    """Medians over the runs of one start's import profile. The "x ref" figures are medians of
    each run's figure over the total import time (or CPU time) of the reference start run just
    before it: ``-X importtime`` counts wall time, which a shared machine's load moves, and a
    ratio to a neighbouring start moves much less."""

    label: str
    runs: int
    modules: dict[str, Imported]  # by name, figures the medians over the runs
    total_ms: float  # median of the runs' total self time (every import of the start)
    by_group: dict[str, float]  # median self time per group
    pulled_in: dict[str, float]  # median self time charged to each group
    cpu_ms: float  # median CPU time of the same starts (import + deps(), importtime included)
    total_x: float  # the imports' total, x the paired reference start's
    by_group_x: dict[str, float]
    pulled_in_x: dict[str, float]
    cpu_x: float  # CPU time, x the paired reference start's


def _sums(run: Sequence[Imported], key: str) -> dict[str, float]:
    summed = dict.fromkeys([*GROUPS, OTHER], 0.0)
    for module in run:
        summed[getattr(module, key)] += module.self_ms
    return summed


def _medians(values: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {group: statistics.median(v[group] for v in values) for group in [*GROUPS, OTHER]}


def profile_of(
    label: str,
    starts: Sequence[Start],
    own: Iterable[str],
    paired: Sequence[Start] = (),
    *,
    per_cpu: bool = False,
) -> Profile:
    """Medians of `starts` (runs of the same start); "x ref" against `paired` (the reference
    start run before each of them; without it, against each run itself): its total import time,
    or with `per_cpu` its CPU time (import + client, the ratio's denominator; CPU-clock
    profiles only, where import times are CPU time too)."""
    runs = [parse_importtime(start.log, own) for start in starts]
    if not runs or not all(runs):
        raise PackagingError(f"{label}: no -X importtime output")
    references = [parse_importtime(start.log) for start in paired] if paired else runs
    reference_cpu = [start.cpu_ms for start in (paired or starts)]
    reference_ms = reference_cpu if per_cpu else [sum(m.self_ms for m in run) for run in references]
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
    totals = [sum(m.self_ms for m in run) for run in runs]
    groups = [_sums(run, "group") for run in runs]
    charged = [_sums(run, "charged_to") for run in runs]

    def over_reference(values: Sequence[Mapping[str, float]]) -> dict[str, float]:
        return _medians(
            [
                {g: ms / ref for g, ms in v.items()}
                for v, ref in zip(values, reference_ms, strict=True)
            ]
        )

    return Profile(
        label=label,
        runs=len(runs),
        modules=modules,
        total_ms=statistics.median(totals),
        by_group=_medians(groups),
        pulled_in=_medians(charged),
        cpu_ms=statistics.median(start.cpu_ms for start in starts),
        total_x=statistics.median(t / r for t, r in zip(totals, reference_ms, strict=True)),
        by_group_x=over_reference(groups),
        pulled_in_x=over_reference(charged),
        cpu_x=statistics.median(s.cpu_ms / r for s, r in zip(starts, reference_cpu, strict=True)),
    )


def _importtime_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


def reference_start(runtime: Runtime, clock: str = "cpu") -> Start:
    """The baseline start (`import boto3` + one client) under ``-X importtime``, once."""
    cpu = clock == "cpu"
    spec: dict[str, Any] = {"paths": [str(runtime.site)], "handler": None, "mark": START_MARK}
    spec |= {"cpu_importtime": True} if cpu else {}
    flags = ("-B",) if cpu else ("-B", "-X", "importtime")
    report, stderr = run_probe(runtime.tools.python, spec, _importtime_env(), runtime.site, *flags)
    if not report.get("ok"):
        raise PackagingError(f"reference start failed: {report.get('error')}")
    return Start(stderr, float(report.get("cpu_ms", 0.0)))


def function_start(runtime: Runtime, function: Function, mode: str, clock: str = "cpu") -> Start:
    """`function`'s start in `mode` under ``-X importtime``, once."""
    outcome, stderr = start_function(
        runtime,
        function,
        mode,
        flags=() if clock == "cpu" else ("-X", "importtime"),
        compile_each_time=True,
        check_modules=False,
        mark=START_MARK,
        cpu_importtime=clock == "cpu",
    )
    if not outcome.ok:
        raise PackagingError(f"{function.logical_id} ({mode}): {outcome.error}")
    return Start(stderr, outcome.cpu_ms)


def render(profile: Profile, top: int = 15) -> list[str]:
    """One start's profile as markdown: the groups, then the top modules by self and by
    cumulative time; "x ref" is a share of the paired reference start's import (CPU) time."""
    lines = [
        f"### {profile.label}",
        "",
        f"{profile.runs} runs, medians: imports {profile.total_ms:.1f} ms"
        f" ({profile.total_x:.2f}x ref); CPU of import + deps() {profile.cpu_ms:.0f} ms"
        f" ({profile.cpu_x:.2f}x the reference's, import timer on)",
        "",
        "| group | self ms | x ref | pulled in ms | x ref |",
        "|---|---:|---:|---:|---:|",
    ]
    for group in profile.by_group:
        lines.append(
            f"| {group} | {profile.by_group[group]:.1f} | {profile.by_group_x[group]:.2f}x"
            f" | {profile.pulled_in[group]:.1f} | {profile.pulled_in_x[group]:.2f}x |"
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
    runtime: Runtime,
    names: Sequence[str],
    runs: int,
    mode: str = "tracer-off",
    *,
    top: int = 15,
    clock: str = "cpu",
) -> str:
    """The profiles of `names` (logical ids, or `REFERENCE`): `runs` rounds, each function
    start run right after a reference start, which its "x ref" figures divide by. `clock`
    "cpu" times each import in CPU time (the probe's own ``-X importtime``), "wall" is
    ``-X importtime`` itself."""
    by_id = {f.logical_id: f for f in runtime.functions}
    unknown = sorted(set(names) - set(by_id) - {REFERENCE})
    if unknown:
        raise PackagingError(f"no such function in the template: {', '.join(unknown)}")
    functions = [by_id[name] for name in names if name != REFERENCE]
    references: list[Start] = []
    pairs: dict[str, list[tuple[Start, Start]]] = defaultdict(list)
    for _ in range(runs):
        if not functions:
            references.append(reference_start(runtime, clock))
        for function in functions:
            reference = reference_start(runtime, clock)
            references.append(reference)
            started = function_start(runtime, function, mode, clock)
            pairs[function.logical_id].append((reference, started))
    per_cpu = clock == "cpu"
    basis = "CPU time (import + client)" if per_cpu else "total import time"
    lines = [
        f"import times: {clock} clock, {runs} rounds, {mode}; x ref: over the {basis} of the"
        " reference start run just before",
        "",
    ]
    for name in names:
        if name == REFERENCE:
            lines += render(profile_of(REFERENCE, references, (), per_cpu=per_cpu), top)
            continue
        function = by_id[name]
        paired, starts = zip(*pairs[name], strict=True)
        handler_module = function.handler.partition(".")[0]
        label = f"{name} ({mode})"
        profile = profile_of(label, starts, (handler_module,), paired, per_cpu=per_cpu)
        lines += render(profile, top)
    return "\n".join(lines)
