"""The packaging checker itself: what it reads from the template and how it reports failures.

Tiny hand-made artifacts stand in for `sam build` output, and this interpreter for python3.12.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.coldstart import import_costs
from infra.coldstart_profile import Start, parse_importtime, profile_of, render
from infra.lambda_build import RUNTIME_MODULES, Toolchain, x86_64_twin
from infra.local.template import load_template
from infra.packaging import (
    Function,
    Runtime,
    check,
    failure_report,
    functions_of,
    shadowed_runtime_modules,
    start_function,
    uncompiled_layer_sources,
)

ROOT = Path(__file__).resolve().parents[2]


def tiny_runtime(tmp_path: Path, handler_source: str, **env: str) -> Runtime:
    artifact = tmp_path / "build" / "TinyFunction"
    artifact.mkdir(parents=True)
    (artifact / "handler.py").write_text(handler_source, encoding="utf-8")
    (tmp_path / "site").mkdir()
    return Runtime(
        tools=Toolchain(sam=Path("unused"), python=Path(sys.executable)),
        build_dir=tmp_path / "build",
        site=tmp_path / "site",
        functions=[Function("TinyFunction", "handler.handler", (), dict(env), 128)],
    )


def test_a_function_that_cannot_import_fails_with_its_name_and_the_error(tmp_path):
    # Given an artifact whose handler needs a package the runtime does not have
    runtime = tiny_runtime(tmp_path, "import aws_xray_sdk\n\ndef handler(e, c): ...\n")
    # When it is checked
    outcomes = check(runtime)
    # Then it fails in both tracer modes, naming the function and the missing module
    assert [(o.function, o.mode, o.ok) for o in outcomes] == [
        ("TinyFunction", "tracer-off", False),
        ("TinyFunction", "tracer-on", False),
    ]
    report = failure_report(outcomes)
    assert "FAIL  TinyFunction" in report
    assert "ModuleNotFoundError: No module named 'aws_xray_sdk'" in report
    assert 'handler.py", line 1' in report  # the traceback points at the artifact


def test_the_dependency_builder_runs_and_its_error_is_reported(tmp_path):
    source = (
        "import os\n\n"
        "def handler(e, c): ...\n\n"
        "def deps():\n"
        "    if 'TICKETS_TABLE' not in os.environ:\n"
        "        raise RuntimeError('missing environment variable TICKETS_TABLE')\n"
    )
    runtime = tiny_runtime(tmp_path, source, TICKETS_TABLE="t")
    function = runtime.functions[0]

    started, _ = start_function(runtime, function, "tracer-off")
    assert started.ok, started.error

    missing, _ = start_function(runtime, function, "tracer-off", without=["TICKETS_TABLE"])
    assert not missing.ok
    assert missing.error == "RuntimeError: missing environment variable TICKETS_TABLE"


def test_tracer_modes_check_whether_the_xray_sdk_was_loaded(tmp_path):
    # A handler that never loads the X-Ray SDK starts with the tracer off, not with it on
    runtime = tiny_runtime(tmp_path, "def handler(e, c): ...\n\ndef deps(): ...\n")
    off, on = check(runtime)
    assert off.ok
    assert not on.ok
    assert on.error == "RuntimeError: modules expected but not loaded: aws_xray_sdk"


def test_a_handler_without_deps_is_reported(tmp_path):
    runtime = tiny_runtime(tmp_path, "def handler(e, c): ...\n")
    outcome, _ = start_function(runtime, runtime.functions[0], "tracer-off")
    assert outcome.error == "AttributeError: handler has no deps() building its dependencies"


def test_every_function_of_the_template_with_its_environment_resolved():
    functions = {f.logical_id: f for f in functions_of(load_template(ROOT / "template.yaml"))}
    assert len(functions) == 23  # incl. Dispatcher, Jobs, Kpi*, ParkedApi, IncidentCampaign…
    intake = functions["FaultIntakeFunction"]
    assert intake.handler == "handler.handler"
    assert intake.layers == ("SharedLayer",)
    assert intake.environment["TICKETS_TABLE"] == "aftercare-packaging-TicketsTable"
    assert intake.environment["POWERTOOLS_SERVICE_NAME"] == "aftercare"
    results = functions["DiagnosticsResultFunction"].environment
    assert results["DEAD_LETTER_QUEUE_ARN"].startswith("arn:aws:sqs:us-east-1:123456789012:")
    assert functions["NotifierFunction"].environment["SENDER_ADDRESS"].count("@") == 1


def test_the_twin_template_builds_for_x86_64_only():
    twin = json.dumps(x86_64_twin(ROOT / "template.yaml"))
    assert "arm64" not in twin
    assert "x86_64" in twin


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (
            "import time: self [us] | cumulative | imported package\n"
            "import time:      1500 |       1500 |   pydantic.main\n"
            "import time:       500 |       2000 | pydantic\n"
            "import time:       700 |        700 | yaml\n",
            {"pydantic": 2.0, "yaml": 0.7},
        )
    ],
)
def test_import_costs_add_up_self_time_per_top_level_package(log, expected):
    assert import_costs(log) == expected


def test_an_artifact_shipping_the_runtime_sdk_is_named(tmp_path):
    runtime = tiny_runtime(tmp_path, "def handler(e, c): ...\n")
    (runtime.build_dir / "TinyFunction" / "botocore").mkdir()
    (runtime.build_dir / "TinyFunction" / "six.py").write_text("", encoding="utf-8")
    assert shadowed_runtime_modules(runtime) == {"TinyFunction": ["botocore", "six"]}


def pyc(path: Path, flags: int) -> None:
    """A .pyc header (PEP 552): magic number, then the flags word."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\r\n" + flags.to_bytes(4, "little") + bytes(8))


def test_layer_modules_without_unchecked_hash_bytecode_are_named(tmp_path):
    # Given a layer with one module compiled as the layer build does, one compiled with
    # timestamps (stat()ed against the zip's dates at every start) and one not compiled
    runtime = tiny_runtime(tmp_path, "def handler(e, c): ...\n")
    runtime.functions[0] = Function("TinyFunction", "handler.handler", ("Layer",), {}, 128)
    site = runtime.build_dir / "Layer" / "python"
    for name in ("good", "stamped", "bare"):
        (site / "pkg").mkdir(parents=True, exist_ok=True)
        (site / "pkg" / f"{name}.py").write_text("", encoding="utf-8")
    pyc(site / "pkg" / "__pycache__" / "good.cpython-312.pyc", 0b01)
    pyc(site / "pkg" / "__pycache__" / "stamped.cpython-312.pyc", 0b00)
    # When the check reads it, Then the two the runtime would compile are named
    assert uncompiled_layer_sources(runtime) == {"Layer": ["pkg/bare.py", "pkg/stamped.py"]}


def test_the_layer_build_removes_every_module_the_runtime_ships():
    makefile = (ROOT / "shared" / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    [line] = [line for line in makefile.splitlines() if line.startswith("RUNTIME_PROVIDED :=")]
    removed = line.split()[2:]
    names = {entry.removesuffix(".py") for entry in removed if not entry.endswith("-*")}
    assert names == set(RUNTIME_MODULES)


def test_the_fast_yaml_loader_reads_every_data_file_as_safe_load_does():
    import yaml
    from aftercare.data import safe_load

    files = sorted((ROOT / "shared" / "aftercare" / "data").rglob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert safe_load(text) == yaml.safe_load(text), path


def test_every_function_starts_without_scanning_for_pydantic_plugins():
    # pydantic looks for plugins in every installed distribution's entry points when the first
    # model is built, unless told there are none: the functions use none
    functions = functions_of(load_template(ROOT / "template.yaml"))
    assert {f.environment.get("PYDANTIC_DISABLE_PLUGINS") for f in functions} == {"__all__"}


IMPORTTIME_LOG = (
    "import time: self [us] | cumulative | imported package\n"
    "import time:       900 |        900 | json\n"  # the probe's own, before the mark
    "PROBE-START\n"
    "import time:       400 |        400 |     email.parser\n"
    "import time:      1000 |       1400 |   http.client\n"
    "import time:      2000 |       3400 | botocore.session\n"
    "import time:       300 |        300 |   enum\n"
    "import time:      1500 |       1800 | pydantic\n"
    "import time:       200 |        200 |     re\n"
    "import time:       100 |        300 |   aftercare.models\n"
    "import time:       600 |        900 | handler\n"
)


def test_an_importtime_profile_charges_what_a_package_pulled_in_to_it():
    # Given a start's -X importtime log (children before their importer)
    modules = {m.name: m for m in parse_importtime(IMPORTTIME_LOG, own_modules=("handler",))}
    # Then only the imports after the probe's mark count
    assert "json" not in modules
    # ...each module is in its package's group, the handler is ours
    assert modules["botocore.session"].group == "boto3/botocore"
    assert modules["handler"].group == "aftercare"
    assert modules["http.client"].group == "other"
    # ...and a standard-library module is charged to the group that imported it first
    assert modules["email.parser"].charged_to == "boto3/botocore"
    assert modules["enum"].charged_to == "pydantic"
    assert modules["re"].charged_to == "aftercare"
    assert modules["email.parser"].self_ms == 0.4
    assert modules["botocore.session"].cumulative_ms == 3.4


def test_an_importtime_profile_sums_groups_over_medians_of_runs():
    slower = IMPORTTIME_LOG.replace("time:      2000 |", "time:      4000 |")
    starts = [Start(IMPORTTIME_LOG, 10.0), Start(slower, 30.0), Start(IMPORTTIME_LOG, 20.0)]
    profile = profile_of("x", starts, ())
    assert profile.runs == 3
    assert profile.cpu_ms == 20.0
    assert profile.modules["botocore.session"].self_ms == 2.0  # the median run
    assert profile.by_group["boto3/botocore"] == 2.0
    assert profile.pulled_in["boto3/botocore"] == pytest.approx(3.4)  # + http, email
    assert profile.by_group["aftercare"] == 0.1  # the handler is not ours without own_modules
    assert profile.total_ms == pytest.approx(6.1)
    # ...without a reference, "x ref" is the run against itself
    assert profile.total_x == pytest.approx(1.0)
    assert profile.cpu_x == pytest.approx(1.0)
    assert "| boto3/botocore | 2.0 |" in "\n".join(render(profile))


def test_an_importtime_profile_divides_each_run_by_the_reference_run_beside_it():
    # Given two runs of a start, the second on a machine twice as busy, each paired with a
    # reference start run just before it on the same machine
    busy = IMPORTTIME_LOG.replace("time:      2000 |", "time:      4000 |").replace(
        "time:      1500 |", "time:      3000 |"
    )
    reference = "PROBE-START\nimport time:      2000 |       2000 | botocore.session\n"
    reference_busy = reference.replace("2000", "4000")
    starts = [Start(IMPORTTIME_LOG, 100.0), Start(busy, 300.0)]
    paired = [Start(reference, 50.0), Start(reference_busy, 100.0)]
    profile = profile_of("x", starts, (), paired)
    # Then each share is taken against its own run's reference, then the median
    assert profile.by_group_x["boto3/botocore"] == pytest.approx(1.0)  # 2/2 and 4/4
    assert profile.by_group_x["pydantic"] == pytest.approx((1.5 / 2 + 3.0 / 4) / 2)
    assert profile.cpu_x == pytest.approx((100 / 50 + 300 / 100) / 2)


def test_the_probes_cpu_import_timer_writes_importtime_lines_in_cpu_time():
    # Given a fresh interpreter with the probe's CPU import timer installed
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import lambda_probe\n"
        "lambda_probe._cpu_importtime(); sys.stderr.write('PROBE-START\\n')\n"
        "import xml.dom.minidom\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, str(ROOT / "infra")],
        capture_output=True,
        text=True,
        check=True,
    )
    # When its stderr is read as -X importtime output
    modules = {m.name: m for m in parse_importtime(done.stderr)}
    # Then every module the import loaded has a line, an importer's time includes its imports'
    assert {"xml", "xml.dom", "xml.dom.minidom"} <= set(modules)
    minidom = modules["xml.dom.minidom"]
    assert 0 <= minidom.self_ms <= minidom.cumulative_ms
    assert modules["xml.dom"].cumulative_ms <= minidom.cumulative_ms  # imported by minidom
