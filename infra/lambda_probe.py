"""One Lambda cold start, run inside a bare interpreter by `infra.packaging` (stdlib only).

Run as ``python3.12 -I -S -B lambda_probe.py`` with a JSON spec on stdin:

    {"paths": [artifact, layer/python, ..., runtime-site],     # sys.path, in Lambda's order
     "handler": "handler.handler",                             # the function's Handler
     "init": "deps",                                           # its lazy dependency builder
     "absent": ["aws_xray_sdk"], "loaded": [],                 # modules that must (not) be loaded
     "origins": ["botocore"],                                  # report where these came from
     "mark": "PROBE-START",                                    # optional: on stderr, just before
     "cpu_importtime": false}                                  # optional: see _cpu_importtime

It imports the handler, calls the builder (settings validated, clients built lazily, data files
loaded), checks the module expectations and prints one line, ``PROBE {json}``, on stdout. With
``"handler": null`` it measures the baseline instead: ``import boto3`` and one client.
Nothing here may import anything outside the standard library: the interpreter has only the
paths it is given.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from typing import Any

MARK = "PROBE "


def _cold_start(spec: dict[str, Any]) -> dict[str, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    module_name, _, attribute = str(spec["handler"]).rpartition(".")
    module = importlib.import_module(module_name)
    if not callable(getattr(module, attribute, None)):
        raise AttributeError(f"{module_name} has no callable {attribute!r}")
    imported = time.perf_counter()
    build = getattr(module, spec["init"], None)
    if not callable(build):
        raise AttributeError(f"{module_name} has no {spec['init']}() building its dependencies")
    build()
    ready = time.perf_counter()
    return {
        "import_ms": (imported - started) * 1000,
        "init_ms": (ready - imported) * 1000,
        "cpu_ms": (time.process_time() - cpu_started) * 1000,
    }


def _baseline() -> dict[str, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    import boto3  # the import is what is measured

    boto3.session.Session().client("dynamodb")
    return {
        "import_ms": (time.perf_counter() - started) * 1000,
        "init_ms": 0.0,
        "cpu_ms": (time.process_time() - cpu_started) * 1000,
    }


def _cpu_importtime() -> None:
    """From now on, one stderr line per module imported, as ``-X importtime`` writes them
    (self and cumulative microseconds, indented by depth, a module after its imports) but in
    CPU time: on a shared machine wall time also counts the waits for a core. Every import of a
    module not yet loaded goes through importlib's ``_find_and_load``, which is timed here."""
    bootstrap: Any = sys.modules["_frozen_importlib"]
    find_and_load = bootstrap._find_and_load
    clock = time.process_time_ns
    children: list[int] = []  # per open import, its imports' cumulative time so far

    def timed(name: str, import_: Any) -> Any:
        depth = len(children)
        children.append(0)
        started = clock()
        try:
            return find_and_load(name, import_)
        finally:
            cumulative = (clock() - started) // 1000
            own = cumulative - children.pop()
            if children:
                children[-1] += cumulative
            sys.stderr.write(f"import time: {own:9d} | {cumulative:10d} | {'  ' * depth}{name}\n")

    bootstrap._find_and_load = timed


def _check_modules(spec: dict[str, Any]) -> None:
    unexpected = [name for name in spec.get("absent", []) if name in sys.modules]
    if unexpected:
        raise RuntimeError(f"modules loaded that must not be: {', '.join(unexpected)}")
    missing = [name for name in spec.get("loaded", []) if name not in sys.modules]
    if missing:
        raise RuntimeError(f"modules expected but not loaded: {', '.join(missing)}")


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """The cold start described by `spec`, as a report (never raises)."""
    sys.path[:0] = list(spec["paths"])
    if spec.get("mark"):  # what -X importtime prints after this is the start's, not the probe's
        sys.stderr.write(str(spec["mark"]) + "\n")
        sys.stderr.flush()
    if spec.get("cpu_importtime"):
        _cpu_importtime()
    try:
        timings = _baseline() if spec.get("handler") is None else _cold_start(spec)
        _check_modules(spec)
    except BaseException as exc:  # the report is the point: import errors, SystemExit, ...
        return {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    origins = {
        name: str(getattr(sys.modules.get(name), "__file__", None) or "")
        for name in spec.get("origins", [])
    }
    # CPU of the whole process so far: interpreter start-up, the probe's own few imports, then
    # the start measured (the parent adds the process's wall time, exec to exit).
    process_cpu_ms = time.process_time() * 1000
    return {
        "ok": True,
        **timings,
        "process_cpu_ms": process_cpu_ms,
        "modules": len(sys.modules),
        "origins": origins,
    }


def main() -> int:
    report = probe(json.load(sys.stdin))
    sys.stdout.flush()
    sys.stdout.write(MARK + json.dumps(report) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
