"""Data files shipped with the layer (fault catalog, policy, prices, notification templates)."""

from __future__ import annotations

from typing import Any


def safe_load(text: str) -> Any:
    """`yaml.safe_load`, with libyaml's C parser when PyYAML has it (the layer's wheels do):
    the functions parse their data files on the first invocation, and it is several times
    faster. PyYAML is imported here, not at import time: only functions that load data pay."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
