"""Every function starts from its `sam build` artifact, as in the managed python3.12 runtime.

The dev venv holds everything the extras pull in; here each handler is imported and its
`deps()` built in a bare ``python3.12 -I -S -B`` that sees only the function's artifact, its
layer and the SDK the runtime ships (see `infra/packaging.py`), in both tracer modes.
`make packaging` creates the sam venv; without it these tests skip, unless
AFTERCARE_REQUIRE_PACKAGING=1 (set by the Makefile) makes a missing toolchain a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.lambda_build import PackagingError
from infra.local.template import load_template
from infra.packaging import (
    TRACER_MODES,
    Outcome,
    Runtime,
    check,
    functions_of,
    prepare,
    shadowed_runtime_modules,
    shadowing_warning,
    start_function,
    uncompiled_layer_sources,
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


def test_no_layer_or_artifact_ships_the_runtime_sdk(runtime):
    # A layer comes before the runtime on sys.path: a botocore in it (aws-xray-sdk depends on
    # one) would replace the runtime's, be compiled at every cold start and skew with boto3.
    assert shadowed_runtime_modules(runtime) == {}, shadowing_warning(runtime)


def test_every_layer_module_ships_its_python312_bytecode(runtime):
    # /opt is read-only: a module without an unchecked-hash .pyc is compiled at every start
    assert uncompiled_layer_sources(runtime) == {}


@pytest.mark.parametrize("function", ["FaultIntakeFunction", "ServiceApiFunction"])
def test_with_the_tracer_on_the_xray_sdk_patches_the_runtimes_botocore(runtime, function):
    # Given a function with the Powertools Tracer on (PowertoolsTracerDisabled=false)
    chosen = next(f for f in runtime.functions if f.logical_id == function)
    # When it starts
    outcome, _ = start_function(runtime, chosen, "tracer-on")
    # Then the X-Ray SDK comes from the layer and the SDK it patches from the runtime
    assert outcome.ok, outcome.traceback
    layer = str(runtime.build_dir / "SharedLayer" / "python")
    assert outcome.origins["aws_xray_sdk"].startswith(layer)
    assert outcome.origins["botocore"].startswith(str(runtime.site))
    assert outcome.origins["boto3"] == ""  # clients come from botocore: boto3 is never imported


def test_with_the_tracer_off_the_sdk_is_the_runtimes_and_xray_is_not_loaded(outcomes, runtime):
    off = [o for (_, mode), o in outcomes.items() if mode == "tracer-off"]
    assert all(o.origins.get("aws_xray_sdk") == "" for o in off)  # never imported
    assert all(o.origins["botocore"].startswith(str(runtime.site)) for o in off)
