"""Powertools' re-export packages are loaded name by name (`aftercare.lean_imports`).

What a function's start must not load is checked in the bare runtime by `make packaging`
(`infra.packaging.NEVER_AT_COLD_START`); here: the deferral changes which modules are loaded,
never which objects a name stands for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aftercare.lean_imports import DEFERRED, reexports

ROOT = Path(__file__).resolve().parents[2]


def in_fresh_interpreter(code: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys\nimport aftercare\n" + code],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_resolver_and_an_event_class_come_without_the_rest_of_their_packages():
    # Given a fresh interpreter that imports what the API and SQS functions import
    loaded = in_fresh_interpreter(
        "from aws_lambda_powertools.event_handler.api_gateway import APIGatewayHttpResolver\n"
        "from aws_lambda_powertools.event_handler import Response, content_types\n"
        "from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('asyncio',"
        " 'aws_lambda_powertools.event_handler.appsync',"
        " 'aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event')))))\n"
    )
    # Then no other resolver, no asyncio and no unrelated event class was imported
    assert loaded == []


def test_an_adapter_loads_the_ports_it_uses_not_every_port():
    loaded = in_fresh_interpreter(
        "from aftercare.adapters.dynamodb import DynamoTicketStore\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "'aftercare.domain.ports.'))))\n"
    )
    assert "aftercare.domain.ports.records" in loaded
    assert not {"aftercare.domain.ports.surveys", "aftercare.domain.ports.notifications"} & set(
        loaded
    )


@pytest.mark.parametrize("package", DEFERRED)
def test_every_name_of_a_deferred_package_is_the_object_its_init_exports(package: str):
    # Given a deferred package in a fresh interpreter, asked for every exported name one by one
    names = in_fresh_interpreter(
        "import importlib\nfrom aftercare.lean_imports import reexports\n"
        f"module = importlib.import_module({package!r})\n"
        "names = reexports(module.__name__, module.__spec__.loader.get_source(module.__name__))\n"
        "lazy = {name: id(getattr(module, name)) for name in names}\n"
        # Then each is the very object the real __init__ binds (it runs on a name it lacks)
        "module.__getattr__('__all__')\n"
        "real = {name: id(module.__dict__[name]) for name in names}\n"
        "print(json.dumps({'same': lazy == real, 'count': len(lazy)}))\n"
    )
    assert names["same"] is True
    assert names["count"] > 10


def test_a_package_init_that_does_more_than_re_export_is_imported_as_it_is():
    # Given __init__ sources: imports and __all__ only, and one with code of its own
    assert reexports(
        "pkg", '"""doc"""\nfrom .a import A\nfrom b import B as C\n__all__ = []\n'
    ) == {
        "A": ("pkg.a", "A"),
        "C": ("b", "B"),
    }
    # Then the one with code (or a star import) is not deferred
    assert reexports("pkg", "from .a import A\nA.x = 1\n") is None
    assert reexports("pkg", "from .a import *\n") is None
    assert reexports("pkg", "import os\n") is None
