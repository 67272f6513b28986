"""Libraries' module-level imports for code no start runs wait for a use
(`aftercare.deferred_imports`): the same objects, imported later."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

LEAN = ("asyncio", "importlib.metadata", "importlib.resources", "zipfile")


def in_fresh_interpreter(code: str, **environ: str) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"} | environ
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys\nimport aftercare\n" + code],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


START = (
    "import aftercare.batch\n"
    "from pydantic import BaseModel\n"
    "class Fault(BaseModel):\n"
    "    code: str\n"
    "Fault(code='PSU')\n"
    "from aftercare.domain.rules import load_catalog\n"
    "load_catalog()\n"
)


def test_a_batch_start_with_plugins_disabled_loads_no_asyncio_nor_importlib_metadata():
    # Given a start as a batch function's (the batch utility, a model validated, data read)
    # with pydantic's plugins disabled, as the template's functions run
    loaded = in_fresh_interpreter(
        START + f"print(json.dumps(sorted(set(sys.modules) & set({LEAN!r}))))",
        PYDANTIC_DISABLE_PLUGINS="__all__",
    )
    # Then neither asyncio, nor the plugin scan's metadata, nor importlib.resources was imported
    assert loaded == []


def test_the_batch_module_gets_the_real_asyncio_on_first_use():
    # Given the batch utility imported without asyncio
    same = in_fresh_interpreter(
        "from aws_lambda_powertools.utilities.batch import base\n"
        "assert 'asyncio' not in sys.modules\n"
        # When its async processor's code uses asyncio
        "gather = base.asyncio.gather\n"
        "import asyncio\n"
        # Then that is the real module's function, and the real module is what others import
        "print(json.dumps([gather is asyncio.gather, type(asyncio).__name__]))\n"
    )
    assert same == [True, "module"]


def test_async_batch_processing_still_runs():
    # Given Powertools' async batch processor (the one that needs asyncio)
    result = in_fresh_interpreter(
        "from aws_lambda_powertools.utilities.batch import (AsyncBatchProcessor, EventType,"
        " async_process_partial_response)\n"
        "async def handle(record):\n"
        "    if record.body == 'bad':\n"
        "        raise ValueError('bad')\n"
        "event = {'Records': [{'messageId': m, 'body': m, 'receiptHandle': 'r',"
        " 'attributes': {}, 'messageAttributes': {}, 'md5OfBody': '', 'eventSource':"
        " 'aws:sqs', 'eventSourceARN': 'arn:aws:sqs:us-east-1:1:q', 'awsRegion':"
        " 'us-east-1'} for m in ('ok', 'bad')]}\n"
        # When a batch with a failing record goes through it
        "response = async_process_partial_response(event=event, record_handler=handle,"
        " processor=AsyncBatchProcessor(event_type=EventType.SQS), context=None)\n"
        "print(json.dumps(response))\n"
    )
    # Then the failing record is reported, as without the deferral
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}


def test_pydantic_plugins_are_still_scanned_when_enabled():
    # Given pydantic's plugins not disabled
    loaded = in_fresh_interpreter(
        "from pydantic.plugin._loader import get_plugins\n"
        "assert 'importlib.metadata' not in sys.modules\n"
        # When a model is built, the plugin loader scans the entry points
        + START
        + "print(json.dumps([list(get_plugins()), 'importlib.metadata' in sys.modules]))\n"
    )
    # Then it did so through the real importlib.metadata
    assert loaded == [[], True]
