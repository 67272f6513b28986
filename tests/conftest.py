"""Suite-wide settings, applied before any test module imports a handler; and how the suite runs
on several pytest-xdist workers (`make test`: `pytest -n 3 --dist loadgroup`).

Workers get *groups* of tests (`SuiteScheduling`):
- the modules that use the shared e2e stack (`local_stack`, tests/e2e/conftest.py) form one group,
  so one worker starts that stack once and runs them all;
- every other integration or e2e module is a group of its own, so a module-scoped fixture (a moto
  server, a private local stack) still starts once;
- unit tests are not grouped: xdist balances them one by one.
Groups are handed out in the order `pytest_collection_modifyitems` leaves: the shared stack's
modules first (one after the other, also without xdist, so the stack starts once), then the
other long groups (`LONG_MODULES_FIRST`), then the rest in collection order (e2e, integration,
unit).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from infra.local import moto_speedups
from tests.fakes.aws import use_fake_credentials

# In-process moto (`mock_aws`) answers with the local stack's moto speed-ups (same responses,
# checked by tests/unit/test_moto_*.py and tests/integration/test_moto_speedups.py), installed
# once per worker before any test: some tests install them anyway, so without this whether a
# test ran on them depended on which tests its worker had run before. moto's model-driven
# response serializer was half of a large scan's cost (test_parts_invariants).
moto_speedups.apply()

# Handlers share one Metrics object (aftercare.observability), built at first import: the
# template sets this variable for every function, so the whole suite does too, whatever order
# the modules import in.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Aftercare")

SHARED_STACK_FIXTURE = "local_stack"
SHARED_STACK_GROUP = "shared-local-stack"
UNGROUPED_DIRECTORY = "tests/unit/"


def uses_shared_stack(item: pytest.Item) -> bool:
    return SHARED_STACK_FIXTURE in getattr(item, "fixturenames", ())


# The longest groups after the shared stack's, longest first (seconds of one run at load ~10:
# the module's all-routes fuzz alone is 140 s). xdist hands groups out in this order, so the
# longest start at once instead of after shorter ones, and the unit tests fill in at the end.
LONG_MODULES_FIRST = ("tests/e2e/test_diagnostics_api.py",)


def longest_groups_first(items: list[pytest.Item], rootpath: Path) -> list[pytest.Item]:
    """`items` with the modules that use the shared stack first, each in its own order, so that
    the stack starts once (it stops after the last test using it) and its group, the longest,
    starts first; then the modules of `LONG_MODULES_FIRST`; then the rest in collection order."""
    sharing = {item.path for item in items if uses_shared_stack(item)}
    long_modules = [rootpath / module for module in LONG_MODULES_FIRST]

    def rank(item: pytest.Item) -> int:
        if item.path in sharing:
            return 0
        if item.path in long_modules:
            return 1 + long_modules.index(item.path)
        return 1 + len(long_modules)

    return sorted(items, key=rank)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = longest_groups_first(items, config.rootpath)


def xdist_group_of(nodeid: str, rootpath: Path) -> str:
    """The group of the test `nodeid`, from its id and its module's source alone: xdist's
    controller has no items (`xdist_group` marks are not used: pytest-xdist 3.8 applies them by
    rewriting `item._nodeid`, which pytest 9 no longer reads)."""
    module = nodeid.split("::", 1)[0]
    if module.startswith(UNGROUPED_DIRECTORY):
        return nodeid
    if _mentions_shared_stack(rootpath / module):
        return SHARED_STACK_GROUP
    return module


def _mentions_shared_stack(path: Path) -> bool:
    try:
        return SHARED_STACK_FIXTURE in path.read_text(encoding="utf-8")
    except OSError:
        return False


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist (dev extras)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` with the suite's groups (see the module's docstring)."""
    if config.getoption("dist", None) != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid, config.rootpath)

    return SuiteScheduling(config, log)


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's credentials step (tests/fakes/aws.py), undone after the test."""
    use_fake_credentials(monkeypatch)
