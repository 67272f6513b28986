"""The shared observability module: the tracer is the X-Ray SDK only when asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aftercare.observability import NoOpTracer, tracer_enabled

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "1"}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({"POWERTOOLS_TRACE_DISABLED": "FALSE"}, True),
        ({"POWERTOOLS_TRACE_DISABLED": "0"}, True),
    ],
)
def test_only_an_explicit_false_enables_the_tracer(environ, enabled):
    assert tracer_enabled(environ) is enabled


def test_a_value_that_is_neither_true_nor_false_names_the_variable():
    with pytest.raises(ValueError, match="POWERTOOLS_TRACE_DISABLED='maybe'"):
        tracer_enabled({"POWERTOOLS_TRACE_DISABLED": "maybe"})


def test_the_no_op_tracer_decorators_return_the_function_itself():
    tracer = NoOpTracer()

    def handler(event: dict, context: object) -> dict:
        return event

    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_lambda_handler(capture_response=False)(handler) is handler
    assert tracer.capture_method(handler) is handler
    assert tracer.capture_method(capture_error=False)(handler) is handler
    tracer.put_annotation("ticket_id", "T-1")
    tracer.put_metadata("outcome", {"ok": True})


def loaded_in_fresh_interpreter(trace_disabled: str) -> dict[str, object]:
    code = (
        "import json, sys\n"
        "from aftercare.observability import tracer\n"
        "patcher = sys.modules.get('aws_xray_sdk.core.patcher')\n"
        "patched = sorted(getattr(patcher, '_PATCHED_MODULES', ()))\n"
        "print(json.dumps({'tracer': type(tracer).__name__,"
        " 'xray': 'aws_xray_sdk' in sys.modules, 'patched': patched}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={
            "POWERTOOLS_TRACE_DISABLED": trace_disabled,
            "PATH": "/usr/bin:/bin",
            "LAMBDA_TASK_ROOT": str(ROOT),  # the Tracer patches only in Lambda
        },
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_with_the_tracer_off_the_xray_sdk_is_never_imported():
    # The dev venv has aws_xray_sdk installed, so an eager import would show here
    assert loaded_in_fresh_interpreter("true") == {
        "tracer": "NoOpTracer",
        "xray": False,
        "patched": [],
    }


def test_with_the_tracer_on_it_is_the_powertools_tracer_patching_botocore_only():
    # botocore is what the functions call AWS through; patch_all would import and wrap every
    # library the X-Ray SDK knows (httplib, sqlite3, ...) on the cold start
    assert loaded_in_fresh_interpreter("false") == {
        "tracer": "Tracer",
        "xray": True,
        "patched": ["botocore"],
    }
