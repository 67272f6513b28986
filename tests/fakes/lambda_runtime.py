"""What the Lambda runtime gives a handler, for tests that call handlers in-process: the
handler module imported from its file, and a context object."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeContext:
    """The parts of a `LambdaContext` our handlers and Powertools read."""

    remaining_ms: int = 30_000
    function_name: str = "aftercare-test"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "req-1"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_handler(name: str, module_name: str | None = None) -> ModuleType:
    """`functions/<name>/handler.py`, imported from its file as the Lambda runtime would.

    Each load is a fresh module (its own `deps()` cache) registered as `module_name`
    (default `handler_<name>`); test files that must not share a module pass their own name.
    """
    path = ROOT / "functions" / name / "handler.py"
    spec = importlib.util.spec_from_file_location(module_name or f"handler_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
