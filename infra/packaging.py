"""Packaging check: does every Lambda function start in the managed python3.12 runtime?

The unit and integration tests run against `.venv`, which holds everything the dev extras pull
in; the real runtime has only the function's artifact, its layers and the SDK the runtime ships.
This module rebuilds that environment on this machine:

1. `sam build` (the real one, from `.venv-sam`) builds an x86_64 twin of `template.yaml` (same
   files as the arm64 build, but native wheels that import here), cached by a hash of its inputs.
2. A site folder holding only what the runtime ships (`RUNTIME_SDK`), cached likewise.
3. For every `AWS::Serverless::Function`, in both tracer modes, `infra/lambda_probe.py` runs in a
   fresh ``python3.12 -I -S -B`` whose sys.path is the artifact, its layers' ``python/`` and that
   site folder, with the function's template environment (references resolved to dummy names),
   dummy credentials and Lambda's own variables: it imports the handler and builds ``deps()``
   (settings validated, lazy clients, data files loaded).

    python -m infra.packaging check              # exit 1 naming every function that cannot start
    python -m infra.packaging coldstart --runs 5 # cold start ratios, sizes, largest import costs

Nothing here contacts AWS: clients are lazy and never called.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from infra.local.template import (
    Resolver,
    Resource,
    Template,
    load_template,
    load_yaml,
    parameter_values,
    pseudo_parameters,
)

ROOT: Final = Path(__file__).resolve().parents[1]
PROBE: Final = Path(__file__).with_name("lambda_probe.py")
CACHE: Final = Path(".aws-sam") / "packaging"  # under the template's folder
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"
STACK_NAME: Final = "aftercare-packaging"
FUNCTION_TYPE: Final = "AWS::Serverless::Function"
LAYER_TYPE: Final = "AWS::Serverless::LayerVersion"
INIT_FUNCTION: Final = "deps"
XRAY_SDK: Final = "aws_xray_sdk"
PROBE_TIMEOUT_S: Final = 120
SAM_BUILD_TIMEOUT_S: Final = 900

# What the managed python3.12 runtime ships besides the standard library (the SDK and its
# dependencies), pinned close to its published versions; nothing else may be assumed.
RUNTIME_SDK: Final = (
    "boto3==1.34.145",
    "botocore==1.34.145",
    "s3transfer==0.10.2",
    "jmespath==1.0.1",
    "python-dateutil==2.9.0.post0",
    "six==1.16.0",
    "urllib3==1.26.19",
)
# The import names of RUNTIME_SDK: a layer or artifact holding one shadows the runtime's copy.
RUNTIME_MODULES: Final = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "six",
    "urllib3",
)


class PackagingError(RuntimeError):
    """The check could not run (no sam, no python3.12, a failed build): not a function's fault."""


# --------------------------------------------------------------------------------------------
# The functions, as the template declares them
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Tools and cached inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Toolchain:
    """The real `sam` and the python3.12 the runtime's builds and probes need."""

    sam: Path
    python: Path

    @classmethod
    def find(cls, sam: Path | None = None, python: Path | None = None) -> Toolchain:
        sam = sam or ROOT / ".venv-sam" / "bin" / "sam"
        if not sam.exists():
            raise PackagingError(f"{sam} not found: run `make sam-setup` (aws-sam-cli venv)")
        return cls(sam=sam, python=python or find_python312())


def find_python312() -> Path:
    """A real python3.12 executable: $AFTERCARE_PYTHON312, PATH, then pyenv's versions."""
    candidates = [os.environ.get("AFTERCARE_PYTHON312", ""), shutil.which("python3.12") or ""]
    candidates += sorted(map(str, Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")))
    for candidate in filter(None, candidates):
        done = subprocess.run(
            [candidate, "-c", "import sys; print(sys.executable, *sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        executable, *version = done.stdout.split() or [""]
        if done.returncode == 0 and version == ["3", "12"]:
            return Path(executable)
    raise PackagingError("no python3.12 found (set AFTERCARE_PYTHON312 or put it on PATH)")


def _digest(parts: Sequence[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()[:16]


def _source_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def build_inputs(template: Template) -> list[bytes]:
    """Everything a `sam build` of `template` depends on: the template and code folders."""
    parts = [template.path.read_bytes()]
    for resource in template.resources.values():
        uri = resource.properties.get("CodeUri") or resource.properties.get("ContentUri")
        if resource.type in (FUNCTION_TYPE, LAYER_TYPE) and isinstance(uri, str):
            for path in _source_files(template.root / uri):
                parts += [str(path.relative_to(template.root)).encode(), path.read_bytes()]
    return parts


def _cached(folder: Path, create: Callable[[Path], None]) -> Path:
    """`folder`, created by `create(temporary)` and renamed into place unless already done."""
    if (folder / ".complete").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        create(scratch)
        (scratch / ".complete").touch()
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _prune(folder: Path, prefix: str, keep: Path) -> None:
    for old in folder.glob(f"{prefix}*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def runtime_site(tools: Toolchain, cache_dir: Path) -> Path:
    """A site folder with exactly `RUNTIME_SDK`, installed for python3.12 (cached)."""
    key = _digest([str(tools.python).encode(), *(pin.encode() for pin in RUNTIME_SDK)])

    def install(target: Path) -> None:
        done = subprocess.run(
            [
                str(tools.python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--target",
                str(target),
                *RUNTIME_SDK,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PackagingError(f"runtime SDK install failed:\n{done.stderr[-3000:]}")

    site = _cached(cache_dir / f"runtime-{key}", install)
    _prune(cache_dir, "runtime-", site)
    return site


def x86_64_twin(template_path: Path) -> dict[str, Any]:
    """The template with every architecture set to x86_64: the same files, wheels for here."""
    document: dict[str, Any] = load_yaml(template_path.read_text(encoding="utf-8"))
    function_globals = (document.get("Globals") or {}).get("Function") or {}
    if "Architectures" in function_globals:
        function_globals["Architectures"] = ["x86_64"]
    for body in document["Resources"].values():
        props = body.get("Properties") or {}
        if body.get("Type") == FUNCTION_TYPE and "Architectures" in props:
            props["Architectures"] = ["x86_64"]
        if body.get("Type") == LAYER_TYPE:
            if "CompatibleArchitectures" in props:
                props["CompatibleArchitectures"] = ["x86_64"]
            metadata = body.get("Metadata") or {}
            if "BuildArchitecture" in metadata:
                metadata["BuildArchitecture"] = "x86_64"
    return document


def sam_build(template: Template, tools: Toolchain, cache_dir: Path) -> Path:
    """`sam build` of the x86_64 twin of `template`; the build folder, cached by input hash."""
    key = _digest([str(tools.sam).encode(), str(tools.python).encode(), *build_inputs(template)])

    def build(target: Path) -> None:
        twin = target / "template.x86_64.json"
        twin.write_text(json.dumps(x86_64_twin(template.path), indent=1), encoding="utf-8")
        env = {
            **os.environ,
            "PATH": f"{tools.python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "SAM_CLI_TELEMETRY": "0",
        }
        argv = [str(tools.sam), "build", "--template-file", str(twin), "--parallel"]
        argv += ["--base-dir", str(template.root), "--build-dir", str(target / "build")]
        done = subprocess.run(
            argv,
            cwd=target,  # sam's own cache (.aws-sam/) stays inside the throwaway folder
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=SAM_BUILD_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise PackagingError(f"sam build failed:\n{(done.stdout + done.stderr)[-4000:]}")

    built = _cached(cache_dir / f"build-{key}", build)
    _prune(cache_dir, "build-", built)
    return built / "build"


# --------------------------------------------------------------------------------------------
# Starting the functions
# --------------------------------------------------------------------------------------------

TRACER_MODES: Final = {"tracer-off": "true", "tracer-on": "false"}  # POWERTOOLS_TRACE_DISABLED


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
    return json.loads(reports[-1].removeprefix("PROBE ")), done.stderr


def start_function(
    runtime: Runtime,
    function: Function,
    mode: str,
    *,
    without: Sequence[str] = (),
    flags: Sequence[str] = (),
    compile_each_time: bool = False,
) -> tuple[Outcome, str]:
    """Cold-start `function` in `mode` (minus the variables in `without`); outcome and stderr.

    Like Lambda (read-only /var/task and /opt, no .pyc in sam's artifacts) the sources are
    compiled at every start when `compile_each_time`; otherwise the bytecode is cached outside
    the artifacts (``-X pycache_prefix``) to make repeated checks cheaper."""
    artifact = runtime.artifact(function)
    env = lambda_environment(function, artifact, mode)
    for name in without:
        env.pop(name, None)
    spec = {
        "paths": runtime.sys_path(function),
        "handler": function.handler,
        "init": INIT_FUNCTION,
        "absent": [XRAY_SDK] if mode == "tracer-off" else [],
        "loaded": [XRAY_SDK] if mode == "tracer-on" else [],
    }
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
    for layer in {layer for f in runtime.functions for layer in f.layers}:
        folders[layer] = runtime.build_dir / layer / "python"
    shadowed = {}
    for name, folder in sorted(folders.items()):
        found = [
            m for m in RUNTIME_MODULES if (folder / m).is_dir() or (folder / f"{m}.py").exists()
        ]
        if found:
            shadowed[name] = found
    return shadowed


def shadowing_warning(runtime: Runtime) -> str:
    return "\n".join(
        f"warning: {name} ships {', '.join(modules)}, shadowing the runtime's copies"
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


# --------------------------------------------------------------------------------------------
# Cold start figures
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.packaging", description=__doc__)
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--sam", type=Path, help="sam executable (default .venv-sam/bin/sam)")
    parser.add_argument("--python", type=Path, help="python3.12 executable")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="start every function in both tracer modes; exit 1 on failure")
    coldstart = sub.add_parser("coldstart", help="cold start ratios, sizes and import costs")
    coldstart.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        runtime = prepare(args.template, Toolchain.find(args.sam, args.python))
        if args.command == "coldstart":
            print(coldstart_report(runtime, args.runs))
            return 0
        outcomes = check(runtime)
        print(shadowing_warning(runtime), file=sys.stderr)
    except PackagingError as exc:
        print(f"packaging check could not run: {exc}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        print(outcome.line())
    if all(o.ok for o in outcomes):
        return 0
    print(failure_report(outcomes, summary=False), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
