"""What a cold start does not pay for: validators of models it never uses, PyYAML, asyncio.

Deterministic pins of the cold-start work (issue 11); the timings themselves are a benchmark
(`python -m infra.coldstart`), and `make packaging` checks in the bare runtime that no function
imports PyYAML and that FaultIntake loads neither the stock watcher's domain nor the API models.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import aftercare
from aftercare.data import load, safe_load, write_json_twins
from pydantic import BaseModel


def aftercare_models() -> list[type[BaseModel]]:
    for module in pkgutil.walk_packages(aftercare.__path__, "aftercare."):
        importlib.import_module(module.name)
    found: list[type[BaseModel]] = []
    pending = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending += model.__subclasses__()
        if model.__module__.startswith("aftercare."):
            found.append(model)
    return found


def test_every_aftercare_model_builds_its_validator_on_first_use():
    # Given every pydantic model of the aftercare package (each function imports most of them)
    models = aftercare_models()
    # Then none builds its schema and validator at import time, only when first used
    assert len(models) > 40
    eager = sorted(m.__qualname__ for m in models if not m.model_config.get("defer_build"))
    assert eager == [], "add defer_build=True to their model_config"


def test_the_layers_json_twins_hold_exactly_what_the_yaml_files_say(tmp_path: Path):
    # Given a copy of the shipped data files, with the twins the layer build writes
    data = tmp_path / "data"
    shutil.copytree(Path(str(resources.files("aftercare.data"))), data)
    written = write_json_twins(data)
    # Then there is one twin per YAML file and each loads to the same data
    sources = sorted(data.rglob("*.yaml"))
    assert [t.with_suffix(".yaml") for t in written] == sources
    for source in sources:
        expected = safe_load(source.read_text(encoding="utf-8"))
        assert load(source.parent, source.name) == expected, source


def test_data_is_read_from_the_twin_when_the_build_wrote_one(tmp_path: Path):
    # Given a YAML file and a twin that (for the test) says something else
    (tmp_path / "policy.yaml").write_text("version: from-yaml\n")
    (tmp_path / "policy.json").write_text('{"version": "from-json"}')
    # When it is loaded, then the twin is read (no PyYAML needed)
    assert load(tmp_path, "policy.yaml") == {"version": "from-json"}
    # And without a twin the YAML is parsed
    (tmp_path / "policy.json").unlink()
    assert load(tmp_path, "policy.yaml") == {"version": "from-yaml"}


def test_the_shared_start_of_a_batch_or_api_function_skips_what_no_first_invocation_uses():
    # Given fresh interpreters importing what every API / batch function's start imports
    def loaded(imports: str, skipped: tuple[str, ...]) -> str:
        code = (
            f"import sys\nimport {imports}\nskipped = {skipped!r}\n"
            "print(sorted(m for m in skipped if m in sys.modules))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    lean = ("statistics", "aws_lambda_powertools.event_handler.appsync")
    lean += ("aftercare.domain.ports.surveys",)
    # Then none of them was imported: statistics (reorder suggestions only), the resolvers the
    # API does not use, ports the adapters do not use; an API start no asyncio (Powertools'
    # other resolvers, its batch utility). A batch start does load asyncio: Powertools' batch
    # utility imports it for its async processor, the price of using the library as it is.
    api = "aftercare.adapters.dynamodb, aftercare.api.resolver, aftercare.observability"
    assert loaded(api, (*lean, "asyncio", "aws_lambda_powertools.utilities.batch")) == "[]"
    assert loaded("aftercare.adapters.dynamodb, aftercare.batch", lean) == "[]"
