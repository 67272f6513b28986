"""Powertools' re-export packages, without importing everything they re-export.

Importing any submodule runs its package's ``__init__`` first, and two Powertools packages the
functions import from have an ``__init__`` that only re-exports every sibling:
``aws_lambda_powertools.event_handler`` (the AppSync, Bedrock, VPC Lattice, ... resolvers, and
asyncio with them) and ``aws_lambda_powertools.utilities.data_classes`` (about thirty event
classes, zipfile among their imports). A function uses one resolver or two or three event
classes; the rest was a fifth of a bare boto3 start. Our own `aftercare.domain.ports` is the
same kind of package: every port module, so any adapter importing one record loaded them all.

`DeferredReexports` (a `sys.meta_path` finder, installed by ``aftercare/__init__``) loads such a
package as an empty module whose names are resolved on first use: a name the ``__init__``
re-exports comes from the module the ``__init__`` imports it from (the same object), a submodule
is imported as usual, and anything else runs the real ``__init__`` first. A package is deferred
only when its ``__init__`` is made of nothing but imports and ``__all__`` (otherwise, or without
its source, it is imported as it is), so no behaviour of the package is skipped, only delayed.
Nothing is imported here until one of these packages is.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:  # importlib.abc imports importlib.resources (pathlib, tempfile, inspect, ...)
    from importlib.abc import Loader as LoaderLike

POWERTOOLS_REEXPORTS: Final = (
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.data_classes",
)
# ...and ours: every port module (a dozen, their records and Protocols) re-exported in one place.
AFTERCARE_REEXPORTS: Final = ("aftercare.domain.ports",)
DEFERRED: Final = POWERTOOLS_REEXPORTS + AFTERCARE_REEXPORTS


def reexports(package: str, source: str) -> dict[str, tuple[str, str]] | None:
    """name -> (module, attribute) for every name `source` (a package's ``__init__``) imports;
    None when it does anything but import names and set ``__all__``."""
    import ast  # loaded by botocore anyway; only needed when a deferred package is imported

    names: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
            return None
        if not isinstance(node, ast.ImportFrom) or node.module is None or node.level > 1:
            return None
        module = f"{package}.{node.module}" if node.level else node.module
        for alias in node.names:
            if alias.name == "*":
                return None
            names[alias.asname or alias.name] = (module, alias.name)
    return names


class _DeferredLoader:
    """Loads the package as an empty module that fills itself in on first use."""

    def __init__(self, loader: LoaderLike, names: dict[str, tuple[str, str]]) -> None:
        self._loader = loader
        self._names = names

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        names, loader = self._names, self._loader

        def resolve(name: str) -> Any:
            if name in names:
                source, attribute = names[name]
                value = getattr(importlib.import_module(source), attribute)
            elif importlib.util.find_spec(f"{module.__name__}.{name}") is not None:
                value = importlib.import_module(f"{module.__name__}.{name}")
            else:  # not a re-export: run the real __init__ and ask again
                del module.__dict__["__getattr__"]
                loader.exec_module(module)
                return getattr(module, name)
            setattr(module, name, value)
            return value

        module.__getattr__ = resolve  # type: ignore[method-assign]

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, get_filename, ...
        return getattr(self._loader, name)


class DeferredReexports:
    """Finds `packages` as usual and loads each one whose ``__init__`` only re-exports with a
    `_DeferredLoader`."""

    def __init__(self, packages: Iterable[str]) -> None:
        self.packages = frozenset(packages)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return spec
        get_source = getattr(spec.loader, "get_source", None)
        source = get_source(fullname) if get_source else None
        names = reexports(fullname, source) if source else None
        if names is not None:
            spec.loader = cast("LoaderLike", _DeferredLoader(spec.loader, names))
        return spec


def defer_reexports(packages: Iterable[str] = DEFERRED) -> None:
    """Install the finder once (before the path finders): a no-op when already installed."""
    if not any(isinstance(finder, DeferredReexports) for finder in sys.meta_path):
        sys.meta_path.insert(0, DeferredReexports(packages))
