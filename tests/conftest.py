"""Suite-wide settings, applied before any test module imports a handler; and how the suite runs
on several pytest-xdist workers (`make test`: `pytest -n 3 --dist loadgroup`).

Workers get *groups* of tests (`SuiteScheduling`):
- the modules that use the shared e2e stack (`local_stack`, tests/e2e/conftest.py) form one group,
  so one worker starts that stack once and runs them all;
- every other integration or e2e module is a group of its own, so a module-scoped fixture (a moto
  server, a private local stack) still starts once;
- unit tests are not grouped: xdist balances them one by one.
Groups are handed out in collection order (e2e first: the longest). Without xdist, the modules
sharing the stack run one after the other (`pytest_collection_modifyitems`), so it starts once.
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


def shared_stack_modules_together(items: list[pytest.Item]) -> list[pytest.Item]:
    """`items` with the modules that use the shared stack moved next to the first of them, each
    in its own order, so that the stack starts once (it stops after the last test using it)."""
    sharing = {item.path for item in items if uses_shared_stack(item)}
    if not sharing:
        return items
    first = next(i for i, item in enumerate(items) if item.path in sharing)
    moved = [item for item in items if item.path in sharing]
    others = [item for item in items if item.path not in sharing]
    return others[:first] + moved + others[first:]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = shared_stack_modules_together(items)


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
