"""The layering holds: the real tree breaks no rule, and each rule catches what it forbids.

The rules and how lazy imports count are written down in `tests/architecture.py`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.architecture import (
    Module,
    Violation,
    check,
    collect,
    module_name,
    read_module,
    violations,
)

ROOT = Path(__file__).resolve().parents[2]


def tree(base: Path, files: dict[str, str]) -> Path:
    """A synthetic source tree laid out like the repository (shared/, infra/, ...)."""
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return base


PACKAGES = {
    "shared/aftercare/__init__.py": "",
    "shared/aftercare/domain/__init__.py": "",
    "shared/aftercare/models/__init__.py": "",
    "shared/aftercare/adapters/__init__.py": "",
    "infra/__init__.py": "",
    "devices/__init__.py": "",
}


def rules_broken(base: Path, files: dict[str, str]) -> list[tuple[str, str]]:
    return [(v.rule, v.module) for v in violations(tree(base, {**PACKAGES, **files}))]


def test_the_code_base_keeps_its_layers() -> None:
    found = violations(ROOT)
    assert found == [], "\n".join(map(str, found))


def test_a_clean_tree_breaks_nothing(tmp_path: Path) -> None:
    # Given a domain that imports models, and adapters that import boto3 and the environment
    files = {
        "shared/aftercare/models/payloads.py": "from pydantic import BaseModel\n",
        "shared/aftercare/domain/intake.py": "from aftercare.models.payloads import BaseModel\n",
        "shared/aftercare/adapters/aws.py": "import os\nimport boto3\nTABLE = os.environ['T']\n",
        "functions/intake/handler.py": "from aftercare.domain import intake\n",
    }
    # Then no rule is broken
    assert rules_broken(tmp_path, files) == []


@pytest.mark.parametrize(
    "source",
    [
        "import boto3\n",
        "from botocore.exceptions import ClientError\n",
        "import paho.mqtt.client as mqtt\n",
        "from aws_lambda_powertools import Logger\n",
        "def publish():\n    import paho.mqtt.publish\n",  # lazy: still forbidden
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import boto3\n",
    ],
    ids=["boto3", "botocore", "paho", "powertools", "lazy-paho", "type-checking-boto3"],
)
def test_the_domain_may_not_import_aws_or_mqtt_clients(tmp_path: Path, source: str) -> None:
    files = {"shared/aftercare/domain/intake.py": source}
    assert rules_broken(tmp_path, files) == [("domain-purity", "aftercare.domain.intake")]


@pytest.mark.parametrize(
    "source",
    [
        "import os\nTABLE = os.environ['TABLE']\n",
        "import os\ndef table():\n    return os.getenv('TABLE')\n",
        "from os import environ\n",
        "from os import getenv as env\n",
    ],
    ids=["os.environ", "os.getenv-in-function", "from-os-import-environ", "getenv-renamed"],
)
def test_the_domain_may_not_read_the_environment(tmp_path: Path, source: str) -> None:
    files = {"shared/aftercare/domain/intake.py": source}
    assert rules_broken(tmp_path, files) == [("domain-purity", "aftercare.domain.intake")]


def test_the_environment_is_also_caught_when_os_is_renamed(tmp_path: Path) -> None:
    files = {"shared/aftercare/domain/intake.py": "import os as o\nT = o.environ['T']\n"}
    assert ("domain-purity", "aftercare.domain.intake") in rules_broken(tmp_path, files)


@pytest.mark.parametrize(
    "source",
    [
        "from aftercare.domain.tickets import Ticket\n",
        "from aftercare.domain import tickets\n",
        "from ..domain import tickets\n",  # relative
        "import aftercare.adapters.aws\n",
        "def view():\n    from aftercare.domain.tickets import Ticket\n",  # lazy: still forbidden
    ],
    ids=["from-domain", "domain-package", "relative", "adapters", "lazy"],
)
def test_models_import_nothing_above_them(tmp_path: Path, source: str) -> None:
    files = {
        "shared/aftercare/domain/tickets.py": "Ticket = object\n",
        "shared/aftercare/models/api.py": source,
    }
    assert rules_broken(tmp_path, files) == [("models-below-domain", "aftercare.models.api")]


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from infra.local import stack\n", "aftercare.adapters.aws"),
        ("import devices.agent\n", "aftercare.adapters.aws"),
        ("def handler():\n    from functions.api import handler\n", "aftercare.adapters.aws"),
    ],
    ids=["infra", "devices", "functions-lazy"],
)
def test_the_shared_layer_imports_no_outer_code(tmp_path: Path, source: str, module: str) -> None:
    files = {"shared/aftercare/adapters/aws.py": source}
    assert rules_broken(tmp_path, files) == [("shared-stands-alone", module)]


def test_an_import_cycle_is_reported_with_its_members(tmp_path: Path) -> None:
    # Given three modules that import each other at load time, across layers
    files = {
        "shared/aftercare/domain/a.py": "from aftercare.domain import b\n",
        "shared/aftercare/domain/b.py": "import aftercare.domain.c\n",
        "shared/aftercare/domain/c.py": "from aftercare.domain.a import thing\n",
        "infra/x.py": "from infra import y\n",
        "infra/y.py": "import infra.x\n",
    }
    # Then each cycle is one violation naming every member
    found = violations(tree(tmp_path, {**PACKAGES, **files}))
    assert [(v.rule, v.detail) for v in found] == [
        ("no-cycles", "aftercare.domain.a -> aftercare.domain.b -> aftercare.domain.c"),
        ("no-cycles", "infra.x -> infra.y"),
    ]


def test_a_cycle_closed_by_a_try_block_at_module_level_counts(tmp_path: Path) -> None:
    files = {
        "devices/a.py": "import devices.b\n",
        "devices/b.py": "try:\n    import devices.a\nexcept ImportError:\n    pass\n",
    }
    assert rules_broken(tmp_path, files) == [("no-cycles", "devices.a")]


def test_lazy_and_type_only_imports_do_not_make_a_load_cycle(tmp_path: Path) -> None:
    # Lazy (function-level) and TYPE_CHECKING imports run after both modules are loaded, or
    # never: they are how a load-time cycle is avoided, so they are not edges of the graph.
    files = {
        "devices/a.py": "import devices.b\n",
        "devices/b.py": "def late():\n    import devices.a\n",
        "devices/c.py": "import devices.d\n",
        "devices/d.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from devices.c import X\n"
        ),
    }
    assert rules_broken(tmp_path, files) == []


def test_a_violation_says_where_and_why() -> None:
    violation = Violation("domain-purity", "aftercare.domain.x", 3, "imports boto3")
    assert str(violation) == "aftercare.domain.x:3: [domain-purity] imports boto3"


@pytest.mark.parametrize(
    "source",
    [
        "from aftercare.adapters.aws import to_item\n",
        "from aftercare.settings import load_settings\n",  # reads the environment
        "from aftercare import observability\n",  # Powertools
        "def handler():\n    from aftercare.runtime import entry_point\n",  # lazy
    ],
    ids=["adapters", "settings", "observability", "lazy-runtime"],
)
def test_the_domain_reaches_nothing_of_the_layer_above_it(tmp_path: Path, source: str) -> None:
    files = {
        "shared/aftercare/adapters/aws.py": "",
        "shared/aftercare/settings.py": "",
        "shared/aftercare/observability.py": "",
        "shared/aftercare/runtime.py": "",
        "shared/aftercare/domain/intake.py": source,
    }
    assert rules_broken(tmp_path, files) == [("domain-purity", "aftercare.domain.intake")]


@pytest.fixture(scope="module")
def code_base() -> dict[str, Module]:
    """The repository's own modules, read once."""
    return collect(ROOT)


# Each forbidden import, planted in a real module of the code base: the check that passes on
# the tree as it is (`test_the_code_base_keeps_its_layers`) fails on each of these.
PLANTED = [
    ("shared/aftercare/domain/intake.py", "import boto3\n", "domain-purity"),
    (
        "shared/aftercare/domain/notifier.py",
        "from botocore.exceptions import ClientError\n",
        "domain-purity",
    ),
    ("shared/aftercare/domain/diagnostics.py", "import paho.mqtt.client\n", "domain-purity"),
    ("shared/aftercare/domain/sla.py", "import os\nLIMIT = os.environ['X']\n", "domain-purity"),
    (
        "shared/aftercare/domain/tickets.py",
        "from aftercare.adapters.ticket_items import ticket_item\n",
        "domain-purity",
    ),
    (
        "shared/aftercare/models/api.py",
        "def view():\n    from aftercare.domain.tickets import Ticket\n",
        "models-below-domain",
    ),
    ("shared/aftercare/adapters/aws.py", "from infra.local import stack\n", "shared-stands-alone"),
    ("shared/aftercare/runtime.py", "import functions\n", "shared-stands-alone"),
    ("shared/aftercare/domain/budget.py", "import devices.agent\n", "shared-stands-alone"),
    ("shared/aftercare/domain/budget.py", "from aftercare.domain import notifier\n", "no-cycles"),
    ("devices/ids.py", "from devices import agent\n", "no-cycles"),
]


@pytest.mark.parametrize(
    ("path", "line", "rule"), PLANTED, ids=[f"{p.split('/')[-1]}:{r}" for p, _, r in PLANTED]
)
def test_each_forbidden_import_planted_in_the_real_code_base_is_caught(
    code_base: dict[str, Module], path: str, line: str, rule: str
) -> None:
    # Given the code base, which keeps its layers
    assert check(code_base) == []
    # When one of its modules gains a forbidden import
    name = module_name(ROOT, ROOT / path)
    source = (ROOT / path).read_text(encoding="utf-8") + "\n" + line
    planted = read_module(name, ROOT / path, source, frozenset(code_base))
    found = check({**code_base, name: planted})
    # Then the check names that rule, and only the planted line breaks one
    assert rule in {v.rule for v in found}
    assert all(v.module == name or name in v.detail for v in found), found


KEY_PREFIXES = ('"TICKET#', "'TICKET#", '"EVT#', "'EVT#", '"META"', "'META'")


def test_storage_keys_stay_in_the_adapters() -> None:
    # Given the domain's and the contract's sources (docstrings may name a key; code may not)
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for layer in ("domain", "models")
        for path in sorted((ROOT / "shared" / "aftercare" / layer).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if any(prefix in line for prefix in KEY_PREFIXES)
    ]
    # Then no line of code spells a tickets-table key: stream images are mapped in adapters
    assert offenders == []
