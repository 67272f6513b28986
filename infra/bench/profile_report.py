"""`bench/profile.md` from a `make profile` run: CPU per fault by process (from /proc), and the
top functions of the costliest processes' cProfile dumps (pure, apart from reading the dumps)."""

from __future__ import annotations

import pstats
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.local.profiling import pid_of

ROOT = Path(__file__).resolve().parents[2]
# pstats' key: (file, line, function name); its value: (primitive calls, calls, own, cumulative,
# callers)
FunctionKey = tuple[str, int, str]


# Built-ins that wait rather than compute: with cProfile's wall clock their own time is mostly
# waiting (a worker's socket read for moto's answer, a long poll, `select`, a lock, a sleep), so
# the own-time tables and the profiled CPU leave them out.
WAITING = (
    "<method 'acquire' of '_thread.",
    "<method 'get' of '_queue.SimpleQueue' objects>",  # an idle pool thread's wait for work
    "<built-in method time.sleep>",
    "<built-in method select.",
    "<method 'poll' of 'select.",
    "<method 'recv",
    "<method 'accept' of '_socket.socket' objects>",
    "<method 'connect' of '_socket.socket' objects>",
)


def waits(key: FunctionKey) -> bool:
    """Whether the function is a built-in that waits (see `WAITING`)."""
    filename, _line, function = key
    return filename == "~" and function.startswith(WAITING)


@dataclass(frozen=True)
class Row:
    """One function of a profile, its times in ms per fault."""

    where: str
    calls: int
    own_ms: float
    cumulative_ms: float


def load_by_process(directory: Path, pids: Mapping[str, int]) -> dict[str, pstats.Stats]:
    """Each stack process's profile (by its name in the stack), found by the pid in the file
    name; a process that wrote none (not profiled, or killed) is left out."""
    names = {pid: name for name, pid in pids.items()}
    found: dict[str, pstats.Stats] = {}
    for path in sorted(directory.glob("*.prof")):
        name = names.get(pid_of(path) or -1)
        if name is None:
            continue
        if name in found:
            found[name].add(str(path))
        else:
            found[name] = pstats.Stats(str(path))
    return found


def shorten(filename: str, roots: Sequence[str] | None = None) -> str:
    """A profile's file name without the machine's prefixes: relative to site-packages, the
    repository or the standard library (`<stdlib>/`); built-ins stay as pstats writes them."""
    if filename == "~" or filename.startswith("<"):
        return filename
    marker = "site-packages/"
    if marker in filename:
        return filename.split(marker, 1)[1]
    for root, label in _roots(roots):
        if filename.startswith(root):
            return label + filename[len(root) :].lstrip("/")
    return filename


def _roots(roots: Sequence[str] | None) -> list[tuple[str, str]]:
    if roots is not None:
        return [(root, "") for root in roots]
    return [(str(ROOT), ""), (sysconfig.get_paths()["stdlib"], "<stdlib>/")]


def describe(key: FunctionKey, roots: Sequence[str] | None = None) -> str:
    """`file:line(function)`, shortened; a built-in as `{builtin name}`."""
    filename, line, function = key
    if filename == "~":
        return function
    return f"{shorten(filename, roots)}:{line}({function})"


def top_rows(
    stats: pstats.Stats,
    faults: int,
    *,
    by: str,
    limit: int,
    roots: Sequence[str] | None = None,
) -> list[Row]:
    """The `limit` functions with the most own (`by="own"`) or cumulative time, per fault,
    the waiting built-ins left out."""
    column = {"own": 2, "cumulative": 3}[by]
    table: dict[FunctionKey, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    candidates = [item for item in table.items() if not waits(item[0])]
    ranked = sorted(candidates, key=lambda item: -item[1][column])[:limit]
    per = max(faults, 1)
    return [
        Row(
            where=describe(key, roots),
            calls=int(figures[1]),
            own_ms=1000 * figures[2] / per,
            cumulative_ms=1000 * figures[3] / per,
        )
        for key, figures in ranked
    ]


def profiled_ms(stats: pstats.Stats, faults: int) -> float:
    """The profile's own time per fault but the waiting built-ins': what the profiler saw of
    the process's CPU."""
    table: dict[FunctionKey, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    seconds = sum(figures[2] for key, figures in table.items() if not waits(key))
    return 1000 * seconds / max(faults, 1)


def _rows_table(title: str, rows: Sequence[Row]) -> list[str]:
    lines = [
        f"{title}:",
        "",
        "| ms/fault own | ms/fault cum. | calls | function |",
        "|---:|---:|---:|---|",
    ]
    lines += [
        f"| {row.own_ms:.2f} | {row.cumulative_ms:.2f} | {row.calls} | `{row.where}` |"
        for row in rows
    ]
    return [*lines, ""]


@dataclass(frozen=True)
class ProfileRun:
    """What one `make profile` run measured."""

    header: str  # when, which revision, rate and seconds
    phase: Mapping[str, Any]  # infra.bench.load.run_phase's result
    profiles: Mapping[str, pstats.Stats]


def render(run: ProfileRun, *, processes: int = 6, limit: int = 15) -> str:
    """The markdown report: CPU by process, then the top functions of the costliest
    `processes` that have a profile."""
    phase = run.phase
    faults = int(phase["faults_processed"])
    cpu: Mapping[str, float] = phase["cpu_ms_per_fault"]
    lines = [
        "# Whole-stack CPU profile (`make profile`)",
        "",
        run.header,
        "",
        _latency_line(phase),
        "",
        "With the profilers on (the function tables), every figure is with cProfile's cost "
        "(it slows Python code down, unevenly, about twice): "
        "read the shares and the rankings, not the absolute milliseconds; `make bench` "
        "measures those. The moto servers profile only their serial work (under the "
        "one-at-a-time lock); workers and the IoT rules bridge every thread. All on cProfile's "
        "wall clock: 'profiled' is the own time of everything but the built-ins that wait "
        "(socket reads, select, locks, sleeps), which the tables leave out too; a worker's "
        "cumulative times include its waits for moto's answers.",
        "",
        "## CPU ms per fault by process (/proc: user + system, idle pollers included)",
        "",
        "| process | CPU ms/fault | profiled ms/fault |",
        "|---|---:|---:|",
    ]
    for name, ms in cpu.items():
        if name == "total" or ms < 0.05:
            continue
        seen = run.profiles.get(name)
        profiled = f"{profiled_ms(seen, faults):.1f}" if seen is not None else "-"
        lines.append(f"| {name} | {ms:.2f} | {profiled} |")
    lines += [f"| **total** | **{cpu.get('total', 0.0):.2f}** | |", ""]
    ranked = [name for name in cpu if name in run.profiles][:processes]
    for name in ranked:
        stats = run.profiles[name]
        lines += [f"## {name}", ""]
        lines += _rows_table("Top by own time", top_rows(stats, faults, by="own", limit=limit))
        lines += _rows_table(
            "Top by cumulative time", top_rows(stats, faults, by="cumulative", limit=limit)
        )
    return "\n".join(lines).rstrip() + "\n"


def _latency_line(phase: Mapping[str, Any]) -> str:
    def p(key: str) -> str:
        figures = phase.get(key) or {}
        if "p50_s" not in figures:
            return "-"
        return f"{1000 * figures['p50_s']:.0f}/{1000 * figures['p99_s']:.0f} ms"

    return (
        f"{phase['faults']} faults at {phase['rate']:g}/s (achieved {phase['achieved_rate']:g}), "
        f"{phase['faults_processed']} tickets written in the window; p50/p99 fault -> ticket "
        f"{p('fault_to_ticket')}, fault -> notified {p('fault_to_first_notification')}, "
        f"diagnostics round trip {p('diagnostics_round_trip')}."
    )
