"""Packaging check: does every Lambda function start in the managed python3.12 runtime?

The unit and integration tests run against `.venv`, which holds everything the dev extras pull
in; the real runtime has only the function's artifact, its layers and the SDK the runtime ships.
With the artifacts of `infra.lambda_build` (the real `sam build`, the runtime's SDK alone), for
every `AWS::Serverless::Function` in both tracer modes, `infra/lambda_probe.py` runs in a fresh
``python3.12 -I -S`` whose sys.path is the artifact, its layers' ``python/`` and that site
folder, with the function's template environment (references resolved to dummy names), dummy
credentials and Lambda's own variables: it imports the handler and builds ``deps()`` (settings
validated, lazy clients, data files loaded).

    python -m infra.packaging check     # exit 1 naming every function that cannot start

Nothing here contacts AWS: clients are lazy and never called.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from infra.lambda_build import (
    CACHE,
    FUNCTION_TYPE,
    ROOT,
    RUNTIME_MODULES,
    PackagingError,
    Toolchain,
    runtime_site,
    sam_build,
)
from infra.local.template import (
    Resolver,
    Resource,
    Template,
    load_template,
    parameter_values,
    pseudo_parameters,
)

PROBE: Final = Path(__file__).with_name("lambda_probe.py")
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"
STACK_NAME: Final = "aftercare-packaging"
INIT_FUNCTION: Final = "deps"
XRAY_SDK: Final = "aws_xray_sdk"
PROBE_TIMEOUT_S: Final = 120
PYC_PYTHON: Final = (3, 12)  # the runtime's interpreter: layer bytecode must be its own
TRACER_MODES: Final = {"tracer-off": "true", "tracer-on": "false"}  # POWERTOOLS_TRACE_DISABLED
# Modules no function's cold start may load: Powertools' parser models (every AWS event as a
# pydantic model) cost about half a bare boto3 import, and no handler uses them; PyYAML (the
# layer ships its data files as JSON too, shared/Makefile); the resolvers and event classes
# Powertools' re-export packages hold for other event sources (aftercare.lean_imports).
NEVER_AT_COLD_START: Final = (
    "aws_lambda_powertools.utilities.parser.models",
    "yaml",
    "aws_lambda_powertools.event_handler.appsync",
    "aws_lambda_powertools.event_handler.bedrock_agent",
    "aws_lambda_powertools.utilities.data_classes.code_pipeline_job_event",
    "statistics",  # only reorder suggestions use it (aftercare.domain.parts)
    "boto3",  # clients come from botocore (aftercare.adapters.aws): no resources, no docs
)
# ...and with the tracer off (the X-Ray SDK imports them itself): Powertools' async batch
# processor's asyncio (aftercare.deferred_imports), pydantic's plugin scan (disabled by the
# template), importlib.resources' readers (aftercare.data.DATA_FOLDER)
NOT_WITHOUT_TRACER: Final = ("asyncio", "importlib.metadata", "zipfile")
# ...and what one function's cold start must not load (its first invocation does not use it).
# tests/unit/test_lean_starts.py pins the same levers in the dev interpreter.
NOT_AT_COLD_START_OF: Final = {
    # ...nor the dispatch rules or the listings' paging
    "FaultIntakeFunction": (
        "aftercare.domain.stock",
        "aftercare.models.api",
        "aftercare.domain.dispatch",
        "aftercare.domain.paging",
    ),
    # parking a message needs no ticket record
    "DeadLetterRecorderFunction": ("aftercare.domain.ports.records", "aftercare.models.tickets"),
    # ticket writes without the incident rules or the field models
    "HoldSweeperFunction": ("aftercare.domain.incidents", "aftercare.models.field"),
    # the maintenance desk (notifier, fault intake) is built by the first rule that fires
    "TelemetryFunction": ("aftercare.domain.composition", "aftercare.domain.intake"),
    # the ticket handover (ticket writes) is built by the first transfer
    "OwnersFunction": ("aftercare.adapters.ticket_writes", "aftercare.domain.escalation"),
    # the escalation rules are read by the first ticket opened or classified; the route groups
    # (their models, errors and adapters) are installed by the first request to one of them
    "ServiceApiFunction": (
        "aftercare.domain.escalation",
        "aftercare.domain.dispatch",
        "aftercare.api.field_routes",
        "aftercare.api.raised_routes",
        "aftercare.api.guide_routes",
        "aftercare.api.incident_routes",
    ),
    # KPIs need working time, not the calendar, dispatch rules or ticket items
    "KpiApiFunction": (
        "aftercare.domain.calendar",
        "aftercare.adapters.ticket_items",
        "aftercare.models.api",
    ),
    "KpiAggregatorFunction": ("aftercare.models.field",),
    # a delivery wakes waiting tickets without the dispatch rules
    "StockWatcherFunction": ("aftercare.domain.dispatching", "aftercare.domain.pricing"),
}
# Where these came from in each start: the SDK must be the runtime's, the X-Ray SDK the layer's.
ORIGINS_REPORTED: Final = ("boto3", "botocore", XRAY_SDK)


@dataclass(frozen=True)
class Function:
    """One `AWS::Serverless::Function`: what the runtime needs to start it."""

    logical_id: str
    handler: str
    layers: tuple[str, ...]
    environment: dict[str, str]
    memory_mb: int


class _DummyAttributes(Mapping[str, str]):
    """Every attribute of one resource, as a plausible name, URL or ARN."""

    def __init__(self, resource: Resource, resolver: Callable[[Any], str]) -> None:
        self._resource = resource
        self._resolve = resolver

    def __getitem__(self, attribute: str) -> str:
        lid, kind = self._resource.logical_id, self._resource.type
        name = f"{STACK_NAME}-{lid}"
        service = kind.split("::")[1].lower() if kind.count("::") == 2 else "cloudformation"
        if attribute == "Ref" and kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
        if attribute == "Ref" and kind == "AWS::SES::EmailIdentity":
            return self._resolve(self._resource.properties["EmailIdentity"])
        if attribute.endswith("Arn") or (attribute == "Ref" and kind == "AWS::SNS::Topic"):
            return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{name}"
        return name if attribute == "Ref" else f"{name}-{attribute}"

    def __iter__(self) -> Iterator[str]:
        return iter(("Ref", "Arn"))

    def __len__(self) -> int:
        return 2


class _DummyResources(Mapping[str, Mapping[str, str]]):
    def __init__(self, template: Template) -> None:
        self._template = template
        self.resolver: Resolver | None = None

    def __getitem__(self, logical_id: str) -> Mapping[str, str]:
        resource = self._template.resources[logical_id]  # KeyError: not in the template
        assert self.resolver is not None
        resolver = self.resolver
        return _DummyAttributes(resource, lambda value: resolver.resolve_str(value, logical_id))

    def __iter__(self) -> Iterator[str]:
        return iter(self._template.resources)

    def __len__(self) -> int:
        return len(self._template.resources)


def dummy_resolver(template: Template) -> Resolver:
    """Resolves intrinsics with the parameters' defaults and dummy physical names."""
    physical = _DummyResources(template)
    resolver = Resolver(
        parameter_values(template, {}),
        pseudo_parameters(REGION, STACK_NAME, ACCOUNT_ID),
        physical,
        conditions=template.conditions,
        mappings=template.mappings,
    )
    physical.resolver = resolver
    return resolver


def functions_of(template: Template) -> list[Function]:
    """Every function of the template, its references resolved to dummy names."""
    resolver = dummy_resolver(template)
    found = []
    for resource in template.resources.values():
        if resource.type != FUNCTION_TYPE:
            continue
        props = resource.properties
        variables = (props.get("Environment") or {}).get("Variables") or {}
        found.append(
            Function(
                logical_id=resource.logical_id,
                handler=str(props["Handler"]),
                layers=tuple(_layer_ids(props.get("Layers") or [])),
                environment={
                    name: resolver.resolve_str(value, f"{resource.logical_id} {name}")
                    for name, value in variables.items()
                },
                memory_mb=int(resolver.resolve_str(props.get("MemorySize", 128), "MemorySize")),
            )
        )
    return found


def _layer_ids(layers: Sequence[Any]) -> Iterator[str]:
    for layer in layers:
        if not (isinstance(layer, dict) and isinstance(layer.get("Ref"), str)):
            raise PackagingError(f"layer {layer!r}: only !Ref to a layer of this template is built")
        yield layer["Ref"]


@dataclass(frozen=True)
class Outcome:
    """One function's cold start in one tracer mode."""

    function: str
    mode: str
    ok: bool
    error: str = ""
    traceback: str = ""
    import_ms: float = 0.0
    init_ms: float = 0.0
    cpu_ms: float = 0.0  # CPU time of import + init: steadier than wall time on a busy machine
    process_cpu_ms: float = 0.0  # the whole process's CPU: interpreter start-up included
    process_wall_ms: float = 0.0  # the whole process's wall time, exec to exit
    origins: dict[str, str] = field(default_factory=dict)  # module -> the file it came from

    def line(self) -> str:
        if self.ok:
            timing = f"import {self.import_ms:6.0f} ms  init {self.init_ms:5.0f} ms"
            return f"ok    {self.function:32} {self.mode:10} {timing}"
        return f"FAIL  {self.function:32} {self.mode:10} {self.error}"


def lambda_environment(function: Function, artifact: Path, mode: str) -> dict[str, str]:
    """What the runtime sets, dummy credentials, then the template's variables for `mode`."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "packaging-check",
        "AWS_SECRET_ACCESS_KEY": "packaging-check",
        "AWS_SESSION_TOKEN": "packaging-check",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": f"{STACK_NAME}-{function.logical_id}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "LAMBDA_TASK_ROOT": str(artifact),
        "_HANDLER": function.handler,
        **function.environment,
        "POWERTOOLS_TRACE_DISABLED": TRACER_MODES[mode],
    }


@dataclass(frozen=True)
class Runtime:
    """A built stack and the runtime's site folder: everything a probe needs."""

    tools: Toolchain
    build_dir: Path
    site: Path
    functions: list[Function] = field(default_factory=list)

    def artifact(self, function: Function) -> Path:
        return self.build_dir / function.logical_id

    @property
    def pycache(self) -> Path:
        """Bytecode of the checks, kept beside (not inside) the artifacts they were built from."""
        return self.build_dir.parent / "pycache"

    def sys_path(self, function: Function) -> list[str]:
        layers = [self.build_dir / layer / "python" for layer in function.layers]
        return [str(path) for path in (self.artifact(function), *layers, self.site)]


def prepare(
    template_path: Path = ROOT / "template.yaml", tools: Toolchain | None = None
) -> Runtime:
    """Build (or reuse) the artifacts and the runtime site folder for `template_path`."""
    tools = tools or Toolchain.find()
    template = load_template(template_path)
    return Runtime(
        tools=tools,
        build_dir=sam_build(template, tools, template.root / CACHE),
        site=runtime_site(tools, template.root / CACHE),
        functions=functions_of(template),
    )


def run_probe(
    python: Path, spec: Mapping[str, Any], env: Mapping[str, str], cwd: Path, *flags: str
) -> tuple[dict[str, Any], str]:
    """Run `lambda_probe.py` in ``python -I -S`` (plus `flags`); its report and its stderr."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [str(python), "-I", "-S", *flags, str(PROBE)],
            input=json.dumps(spec),
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no answer within {PROBE_TIMEOUT_S} s"}, ""
    reports = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    if not reports:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "error": f"exit {done.returncode}: {tail[0]}"}, done.stderr
    report = json.loads(reports[-1].removeprefix("PROBE "))
    report["process_wall_ms"] = (time.perf_counter() - started) * 1000  # exec to exit
    return report, done.stderr


def start_function(
    runtime: Runtime,
    function: Function,
    mode: str,
    *,
    without: Sequence[str] = (),
    flags: Sequence[str] = (),
    compile_each_time: bool = False,
    check_modules: bool = True,
    mark: str = "",
    cpu_importtime: bool = False,
) -> tuple[Outcome, str]:
    """Cold-start `function` in `mode` (minus the variables in `without`); outcome and stderr.
    With `check_modules`, the start fails if it loads what it must not (or misses what it must).
    With `mark`, the probe writes it on stderr just before the start (``-X importtime`` output
    after it is the start's own); with `cpu_importtime`, the probe writes ``-X importtime``'s
    lines itself, in CPU time (`lambda_probe._cpu_importtime`).

    With `compile_each_time` (``-B``), as in Lambda (read-only /var/task and /opt), shipped
    bytecode (the layer's, the runtime SDK's) is read and every other source compiled at each
    start; otherwise all bytecode is cached outside the artifacts (``-X pycache_prefix``) to
    make repeated checks cheaper."""
    artifact = runtime.artifact(function)
    env = lambda_environment(function, artifact, mode)
    for name in without:
        env.pop(name, None)
    spec: dict[str, Any] = {
        "paths": runtime.sys_path(function),
        "handler": function.handler,
        "init": INIT_FUNCTION,
        "absent": [
            *NEVER_AT_COLD_START,
            *NOT_AT_COLD_START_OF.get(function.logical_id, ()),
            *([XRAY_SDK, *NOT_WITHOUT_TRACER] if mode == "tracer-off" else []),
        ],
        "loaded": [XRAY_SDK] if mode == "tracer-on" else [],
    }
    if not check_modules:  # measuring another build (infra.coldstart --against) as it is
        spec |= {"absent": [], "loaded": []}
    spec |= {"origins": [*ORIGINS_REPORTED]} | ({"mark": mark} if mark else {})
    spec |= {"cpu_importtime": True} if cpu_importtime else {}
    bytecode = ["-B"] if compile_each_time else ["-X", f"pycache_prefix={runtime.pycache}"]
    report, stderr = run_probe(runtime.tools.python, spec, env, artifact, *bytecode, *flags)
    outcome = Outcome(
        function=function.logical_id,
        mode=mode,
        ok=bool(report.get("ok")),
        error=str(report.get("error", "")),
        traceback=str(report.get("traceback", "")),
        import_ms=float(report.get("import_ms", 0.0)),
        init_ms=float(report.get("init_ms", 0.0)),
        cpu_ms=float(report.get("cpu_ms", 0.0)),
        process_cpu_ms=float(report.get("process_cpu_ms", 0.0)),
        process_wall_ms=float(report.get("process_wall_ms", 0.0)),
        origins={str(k): str(v) for k, v in (report.get("origins") or {}).items()},
    )
    return outcome, stderr


def check(runtime: Runtime, workers: int = 2) -> list[Outcome]:
    """Every function in every tracer mode, in template order."""
    jobs = [(function, mode) for function in runtime.functions for mode in TRACER_MODES]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: start_function(runtime, *job)[0], jobs))


def shadowed_runtime_modules(runtime: Runtime) -> dict[str, list[str]]:
    """Per layer and function artifact, the runtime's modules it ships again. They come first on
    sys.path, so they replace the runtime's (version skew with its boto3) and, shipped without
    bytecode, are compiled at every cold start."""
    folders = {f.logical_id: runtime.artifact(f) for f in runtime.functions}
    folders |= layer_folders(runtime)
    shadowed = {}
    for name, folder in sorted(folders.items()):
        found = [
            m for m in RUNTIME_MODULES if (folder / m).is_dir() or (folder / f"{m}.py").exists()
        ]
        if found:
            shadowed[name] = found
    return shadowed


def layer_folders(runtime: Runtime) -> dict[str, Path]:
    """Each layer of the functions: its ``python/`` folder in the build."""
    layers = {layer for f in runtime.functions for layer in f.layers}
    return {layer: runtime.build_dir / layer / "python" for layer in sorted(layers)}


# The flags word of a .pyc (PEP 552): bit 0 hash-based, bit 1 check the source.
_PYC_UNCHECKED_HASH: Final = 0b01


def uncompiled_layer_sources(runtime: Runtime) -> dict[str, list[str]]:
    """Per layer, the modules without python3.12 bytecode that the runtime would use as it is
    (an unchecked-hash .pyc): those are compiled at every cold start, /opt being read-only."""
    tag = f"cpython-{PYC_PYTHON[0]}{PYC_PYTHON[1]}"
    missing = {}
    for layer, folder in layer_folders(runtime).items():
        found = []
        for source in sorted(folder.rglob("*.py")):
            pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
            header = pyc.read_bytes()[:8] if pyc.is_file() else b""
            flags = int.from_bytes(header[4:8], "little") if len(header) == 8 else -1
            if flags != _PYC_UNCHECKED_HASH:
                found.append(str(source.relative_to(folder)))
        if found:
            missing[layer] = found
    return missing


def shadowing_warning(runtime: Runtime) -> str:
    """One line per layer or artifact that ships the runtime's own modules (empty if none)."""
    return "\n".join(
        f"{name} ships {', '.join(modules)}, shadowing the runtime's copies"
        for name, modules in shadowed_runtime_modules(runtime).items()
    )


def failure_report(outcomes: Sequence[Outcome], *, summary: bool = True) -> str:
    """One line per failed start (unless not `summary`), then each distinct traceback once."""
    failed = [o for o in outcomes if not o.ok]
    lines = [o.line() for o in failed] if summary else []
    seen: set[str] = set()
    for outcome in failed:
        if outcome.traceback and outcome.error not in seen:
            seen.add(outcome.error)
            lines += ["", f"{outcome.function} ({outcome.mode}):", outcome.traceback.rstrip()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.packaging", description=__doc__)
    parser.add_argument("command", choices=["check"])
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--sam", type=Path, help="sam executable (default .venv-sam/bin/sam)")
    parser.add_argument("--python", type=Path, help="python3.12 executable")
    args = parser.parse_args(argv)
    try:
        runtime = prepare(args.template, Toolchain.find(args.sam, args.python))
        outcomes = check(runtime)
    except PackagingError as exc:
        print(f"packaging check could not run: {exc}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        print(outcome.line())
    shadowing = shadowing_warning(runtime)
    if shadowing:
        print(shadowing, file=sys.stderr)
    if all(o.ok for o in outcomes) and not shadowing:
        return 0
    print(failure_report(outcomes, summary=False), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
