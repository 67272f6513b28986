"""The layering rules of the code base, checked from source with `ast` (nothing is imported).

Rules (each violation names the file, the line and the rule):

- ``domain-purity``: `aftercare.domain` imports no boto3, botocore, paho or Powertools and reads
  no environment (``os.environ``, ``os.getenv``, ``from os import environ/getenv``): it is
  given its inputs, so it runs the same in a test, a Lambda and a device. Of the layer it
  imports only the domain, the models and the packaged data: not the adapters, nor the
  settings, observability or runtime helpers, through which the same would come in.
- ``models-below-domain``: `aftercare.models` (the contract layer: wire payloads, stored
  shapes, API views) imports nothing of the package outside `aftercare.models`.
- ``shared-stands-alone``: the layer (`aftercare`) imports nothing from `infra`, `functions`
  or `devices`; they build on it, never the other way round.
- ``no-cycles``: no import cycle between modules of shared/, infra/, functions/, devices/.

The layer rules look at every import wherever it is written (a function-level import counts
as much as a module-level one). The cycle rule looks at the import graph as it is loaded:
module-level imports only, including those under ``try``/``if`` at module level but not
those under ``if TYPE_CHECKING:`` (never executed) and not function-level ("lazy") imports.
A lazy import runs after both modules have finished loading, so it cannot fail a load or see
a half-initialised module; it is the sanctioned way out of a load-time cycle, and the layer
rules still forbid the lazy imports that would break the layering.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOTS = ("shared", "infra", "functions", "devices")
DOMAIN = "aftercare.domain"
MODELS = "aftercare.models"
SHARED = "aftercare"
DOMAIN_FORBIDDEN = ("boto3", "botocore", "paho", "aws_lambda_powertools")
ENV_NAMES = frozenset({"environ", "getenv", "environb", "getenvb"})
OUTER_LAYERS = ("infra", "functions", "devices")
DOMAIN_MAY_USE = (DOMAIN, MODELS, "aftercare.data")


@dataclass(frozen=True)
class Import:
    target: str  # the module imported (for `from a import b`: `a.b` when that is a module)
    line: int
    lazy: bool  # inside a function body
    type_only: bool  # under `if TYPE_CHECKING:`


@dataclass(frozen=True)
class Violation:
    rule: str
    module: str
    line: int
    detail: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: [{self.rule}] {self.detail}"


@dataclass
class Module:
    name: str
    path: Path
    imports: list[Import] = field(default_factory=list)
    env_reads: list[tuple[int, str]] = field(default_factory=list)


def module_name(root: Path, path: Path) -> str:
    """`shared/aftercare/domain/x.py` -> `aftercare.domain.x`; `functions/api/handler.py` ->
    `functions.api.handler`; a package's `__init__.py` is the package."""
    relative = path.relative_to(root)
    parts = list(relative.with_suffix("").parts)
    if parts[0] == "shared":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


class _Collector(ast.NodeVisitor):
    def __init__(self, module: Module, is_package: bool, known: frozenset[str]) -> None:
        self.module = module
        self.is_package = is_package
        self.known = known
        self.depth = 0  # function nesting
        self.type_only = 0

    def _add(self, target: str, node: ast.stmt) -> None:
        self.module.imports.append(
            Import(target, node.lineno, lazy=self.depth > 0, type_only=self.type_only > 0)
        )

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]
    visit_Lambda = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.type_only += 1
        for child in node.body:
            self.visit(child)
        self.type_only -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)
            if alias.name == "os" and alias.asname not in (None, "os"):
                self.module.env_reads.append((node.lineno, f"os imported as {alias.asname}"))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.module.name, self.is_package, node.level, node.module)
        for alias in node.names:
            candidate = f"{base}.{alias.name}" if base else alias.name
            self._add(candidate if candidate in self.known else base, node)
            if base == "os" and alias.name in ENV_NAMES:
                self.module.env_reads.append((node.lineno, f"from os import {alias.name}"))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in ENV_NAMES:
            self.module.env_reads.append((node.lineno, f"os.{node.attr}"))
        self.generic_visit(node)


def _sources(base: Path, roots: Iterable[str]) -> Iterator[Path]:
    for root in roots:
        top = base / root
        if top.is_dir():
            yield from sorted(p for p in top.rglob("*.py") if "__pycache__" not in p.parts)


def collect(base: Path, roots: Iterable[str] = ROOTS) -> dict[str, Module]:
    """Every module under `roots` of `base`, with its imports and environment reads."""
    paths = list(_sources(base, roots))
    names = {path: module_name(base, path) for path in paths}
    known = frozenset(names.values())
    return {
        name: read_module(name, path, path.read_text(encoding="utf-8"), known)
        for path, name in names.items()
    }


def read_module(name: str, path: Path, source: str, known: frozenset[str]) -> Module:
    """One module's imports and environment reads, from its source text."""
    module = Module(name, path)
    tree = ast.parse(source, filename=str(path))
    _Collector(module, path.name == "__init__.py", known).visit(tree)
    return module


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _layer_violations(module: Module) -> Iterator[Violation]:
    name = module.name
    for imp in module.imports:
        if _within(name, DOMAIN) and any(_within(imp.target, f) for f in DOMAIN_FORBIDDEN):
            yield Violation("domain-purity", name, imp.line, f"imports {imp.target}")
        if (
            _within(name, DOMAIN)
            and _within(imp.target, SHARED)
            and not any(_within(imp.target, ok) for ok in DOMAIN_MAY_USE)
        ):
            yield Violation("domain-purity", name, imp.line, f"imports {imp.target}")
        if (
            _within(name, MODELS)
            and _within(imp.target, SHARED)
            and not _within(imp.target, MODELS)
        ):
            yield Violation("models-below-domain", name, imp.line, f"imports {imp.target}")
        if _within(name, SHARED) and any(_within(imp.target, o) for o in OUTER_LAYERS):
            yield Violation("shared-stands-alone", name, imp.line, f"imports {imp.target}")
    if _within(name, DOMAIN):
        for line, what in module.env_reads:
            yield Violation("domain-purity", name, line, f"reads the environment ({what})")


def load_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Module -> the modules of the tree it imports while it loads."""
    return {
        name: {
            imp.target
            for imp in module.imports
            if imp.target in modules and not imp.lazy and not imp.type_only
        }
        - {name}
        for name, module in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def violations(base: Path, roots: Iterable[str] = ROOTS) -> list[Violation]:
    """Every broken rule in the tree at `base`."""
    return check(collect(base, roots))


def check(modules: dict[str, Module]) -> list[Violation]:
    """Every broken rule among `modules` (as `collect` reads them)."""
    found = [v for module in modules.values() for v in _layer_violations(module)]
    for component in cycles(load_graph(modules)):
        first = modules[component[0]]
        line = next((i.line for i in first.imports if i.target in component and not i.lazy), 0)
        found.append(Violation("no-cycles", first.name, line, " -> ".join(component)))
    return sorted(set(found), key=lambda v: (v.rule, v.module, v.line, v.detail))
