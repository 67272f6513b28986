"""The functions' build, as AWS will get it: the real `sam build` and the runtime's own SDK.

`sam build` (from `.venv-sam`: aws-sam-cli pins boto3 differently from the project) builds an
x86_64 twin of the template (the same files as the arm64 build, with wheels that import on this
machine), and a site folder holds only what the python3.12 runtime ships (`RUNTIME_SDK`). Both
are cached under the template's ``.aws-sam/packaging/``, keyed by a hash of their inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from infra.local.cfn_yaml import load_yaml
from infra.local.template import Template

ROOT: Final = Path(__file__).resolve().parents[1]
CACHE: Final = Path(".aws-sam") / "packaging"  # under the template's folder
FUNCTION_TYPE: Final = "AWS::Serverless::Function"
LAYER_TYPE: Final = "AWS::Serverless::LayerVersion"
SAM_BUILD_TIMEOUT_S: Final = 900
TWIN_ARCHITECTURE: Final = "x86_64"
LAYER_ARCHITECTURE_ENV: Final = "LAYER_ARCHITECTURE"

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
        function_globals["Architectures"] = [TWIN_ARCHITECTURE]
    for body in document["Resources"].values():
        props = body.get("Properties") or {}
        if body.get("Type") == FUNCTION_TYPE and "Architectures" in props:
            props["Architectures"] = [TWIN_ARCHITECTURE]
        if body.get("Type") == LAYER_TYPE:
            if "CompatibleArchitectures" in props:
                props["CompatibleArchitectures"] = [TWIN_ARCHITECTURE]
            metadata = body.get("Metadata") or {}
            if "BuildArchitecture" in metadata:
                metadata["BuildArchitecture"] = TWIN_ARCHITECTURE
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
            # sam does not tell a makefile layer its architecture (shared/Makefile)
            LAYER_ARCHITECTURE_ENV: TWIN_ARCHITECTURE,
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
