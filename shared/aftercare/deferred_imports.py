"""Module-level imports that libraries make for code no function's start runs, deferred to the
first use of what they import.

- Powertools' batch module (`...utilities.batch.base`) imports `asyncio` for its
  `AsyncBatchProcessor` only; the functions use the synchronous `BatchProcessor`. asyncio is
  about 7 % of a bare boto3 start (13 ms CPU) in every batch function.
- pydantic's plugin loader imports `importlib.metadata` (with csv, zipfile, ...: ~6 ms CPU,
  3 % of a bare boto3 start, at the first model built) for `entry_points`, which it calls only
  when plugins are enabled; the template disables them (`PYDANTIC_DISABLE_PLUGINS`).

`DeferredImports` (a `sys.meta_path` finder, installed by ``aftercare/__init__``) runs such a
module with a `StandIn` in `sys.modules` for the dependency while the module's code executes.
The module binds the stand-in; the stand-in imports the real dependency on the first attribute
asked of it (a function imported by name is a wrapper that does so when called). It leaves
`sys.modules` once the module has run, so any other importer gets the real module, and when the
dependency is already imported the module gets it as usual. Nothing is skipped, only delayed.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:  # importlib.abc imports importlib.resources (pathlib, tempfile, inspect, ...)
    from importlib.abc import Loader as LoaderLike

# module -> {dependency it imports at module level: names it imports from it (functions)}
DEFERRED_IMPORTS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "aws_lambda_powertools.utilities.batch.base": {"asyncio": ()},
    "pydantic.plugin._loader": {"importlib.metadata": ("entry_points",)},
}


class StandIn(ModuleType):
    """Stands for module `name` until an attribute is asked of it, which imports the real one.

    Each of `functions` is a wrapper that imports the real module and calls its function, so
    ``from name import function`` binds it without importing anything."""

    def __init__(self, name: str, functions: Sequence[str] = ()) -> None:
        super().__init__(name)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            self.__path__ = list(spec.submodule_search_locations)  # a package: submodules import
        for function in functions:
            setattr(self, function, self._deferred(function))

    def _deferred(self, function: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self.real(), function)(*args, **kwargs)

        call.__name__ = call.__qualname__ = function
        return call

    def real(self) -> ModuleType:
        """The real module, imported (once) in place of the stand-in."""
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return importlib.import_module(self.__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


class _StandInLoader:
    """Executes the module with stand-ins for the dependencies not imported yet."""

    def __init__(self, loader: LoaderLike, deferred: Mapping[str, tuple[str, ...]]):
        self._loader = loader
        self._deferred = deferred

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        placed = {
            name: StandIn(name, functions)
            for name, functions in self._deferred.items()
            if name not in sys.modules
        }
        sys.modules.update(placed)
        try:
            self._loader.exec_module(module)
        finally:
            for name, stand_in in placed.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ...
        return getattr(self._loader, name)


class DeferredImports:
    """Finds the modules of `deferred` as usual and loads them with a `_StandInLoader`."""

    def __init__(self, deferred: Mapping[str, Mapping[str, tuple[str, ...]]]) -> None:
        self.deferred = dict(deferred)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.deferred:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = cast("LoaderLike", _StandInLoader(spec.loader, self.deferred[fullname]))
        return spec


def defer_imports(deferred: Mapping[str, Mapping[str, tuple[str, ...]]] = DEFERRED_IMPORTS) -> None:
    """Install the finder once (before the path finders): a no-op when already installed."""
    if not any(isinstance(finder, DeferredImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, DeferredImports(deferred))
