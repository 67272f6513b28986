"""Data files shipped with the layer (fault catalog, policy, prices, notification templates).

The files are YAML. The layer build (`shared/Makefile`) also writes a JSON twin of each one
(`write_json_twins`), so a cold start in Lambda reads JSON (the runtime's SDK has the json
module loaded already) and never imports PyYAML; without the twins (tests, the local stack)
the YAML is parsed.

`DATA_FOLDER` is this package's folder (the layer ships it unzipped): reading it through
`importlib.resources.files` would import importlib.resources and its readers (zipfile with
them) at every cold start, ~2 % of a bare boto3 start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

JSON_TWIN: Final = ".json"
DATA_FOLDER: Final = Path(__file__).parent


def safe_load(text: str) -> Any:
    """`yaml.safe_load`, with libyaml's C parser when PyYAML has it (the layer's wheels do):
    it is several times faster. PyYAML is imported here, not at import time: only functions
    that load data pay."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def load(folder: Traversable, name: str) -> Any:
    """The content of the YAML data file `name` in `folder`, from its JSON twin when the layer
    build wrote one."""
    twin = folder.joinpath(name.removesuffix(".yaml") + JSON_TWIN)
    if twin.is_file():
        return json.loads(twin.read_text(encoding="utf-8"))
    return safe_load(folder.joinpath(name).read_text(encoding="utf-8"))


def write_json_twins(folder: Path) -> list[Path]:
    """Beside every YAML file under `folder`, the same data as JSON; fails on data JSON cannot
    hold exactly (dates, non-string keys), so a twin never differs from its YAML."""
    written = []
    for source in sorted(folder.rglob("*.yaml")):
        data = safe_load(source.read_text(encoding="utf-8"))
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
        if json.loads(text) != data:
            raise ValueError(f"{source}: its data does not survive a JSON round trip")
        twin = source.with_suffix(JSON_TWIN)
        twin.write_text(text, encoding="utf-8")
        written.append(twin)
    return written
