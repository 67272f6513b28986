"""Every function starts from its `sam build` artifact, as in the managed python3.12 runtime.

The dev venv holds everything the extras pull in; here each handler is imported and its
`deps()` built in a bare ``python3.12 -I -S -B`` that sees only the function's artifact, its
layer and the SDK the runtime ships (see `infra/packaging.py`), in both tracer modes.
`make packaging` creates the sam venv; without it these tests skip, unless
AFTERCARE_REQUIRE_PACKAGING=1 (set by the Makefile) makes a missing toolchain a failure.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from infra.local.template import load_template
from infra.packaging import (
    TRACER_MODES,
    Outcome,
    PackagingError,
    Runtime,
    check,
    functions_of,
    prepare,
    shadowed_runtime_modules,
    shadowing_warning,
    start_function,
)

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = [f.logical_id for f in functions_of(load_template(ROOT / "template.yaml"))]

pytestmark = pytest.mark.timeout(1200)  # a fresh machine runs `sam build` first


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    try:
        return prepare(ROOT / "template.yaml")
    except PackagingError as exc:
        if os.environ.get("AFTERCARE_REQUIRE_PACKAGING") == "1":
            pytest.fail(f"packaging check could not run: {exc}")
        pytest.skip(f"{exc} (`make packaging` sets it up)")


@pytest.fixture(scope="session")
def outcomes(runtime: Runtime) -> dict[tuple[str, str], Outcome]:
    return {(o.function, o.mode): o for o in check(runtime)}


@pytest.mark.parametrize("mode", list(TRACER_MODES))
@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_function_starts_in_the_runtime(outcomes, function, mode):
    outcome = outcomes[(function, mode)]
    assert outcome.ok, f"{function} cannot start ({mode}): {outcome.error}\n{outcome.traceback}"


def test_a_missing_variable_fails_the_start_with_its_name(runtime):
    # Given the fault intake deployed without its tickets table
    intake = next(f for f in runtime.functions if f.logical_id == "FaultIntakeFunction")
    # When it starts
    outcome, _ = start_function(runtime, intake, "tracer-off", without=["TICKETS_TABLE"])
    # Then its first invocation's initialisation fails, naming the variable
    assert not outcome.ok
    assert outcome.error == (
        "MissingSettings: Settings: environment variable TICKETS_TABLE is missing"
    )


def test_layers_do_not_shadow_the_runtime_sdk(runtime):
    # A warning, not a failure: aws-xray-sdk depends on botocore, and sam's python builder
    # cannot install it without its dependencies (see the README's packaging section).
    shadowed = shadowed_runtime_modules(runtime)
    if shadowed:
        warnings.warn(shadowing_warning(runtime), stacklevel=1)
