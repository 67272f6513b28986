"""The limits the scale model compares against (`limits.yaml`): documented AWS defaults, each
with its name and the page it comes from, and the model's own stated assumptions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

LIMITS_FILE = Path(__file__).with_name("limits.yaml")


@dataclass(frozen=True)
class Limit:
    key: str
    name: str
    value: float
    unit: str
    adjustable: bool
    source: str
    note: str = ""


@dataclass(frozen=True)
class Limits:
    limits: dict[str, Limit]
    assumptions: dict[str, float]

    def __getitem__(self, key: str) -> Limit:
        return self.limits[key]

    def with_value(self, key: str, value: float) -> Limits:
        """The same limits with one value replaced (e.g. the SES rate AWS granted)."""
        old = self.limits[key]
        name = f"{old.name.removesuffix(', sandbox')} (the value given, not the default)"
        replaced = Limit(old.key, name, value, old.unit, old.adjustable, old.source, old.note)
        return Limits({**self.limits, key: replaced}, self.assumptions)

    def with_assumption(self, key: str, value: float) -> Limits:
        """The same limits with one of the model's assumptions replaced (sensitivity runs)."""
        if key not in self.assumptions:
            raise KeyError(f"no assumption {key}; there are {sorted(self.assumptions)}")
        return Limits(self.limits, {**self.assumptions, key: value})


def load_limits(path: Path = LIMITS_FILE) -> Limits:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    limits = {
        key: Limit(
            key=key,
            name=str(spec["name"]),
            value=float(spec["value"]),
            unit=str(spec["unit"]),
            adjustable=bool(spec["adjustable"]),
            source=str(spec["source"]),
            note=" ".join(str(spec.get("note", "")).split()),
        )
        for key, spec in document["limits"].items()
    }
    assumptions = {key: float(spec["value"]) for key, spec in document["assumptions"].items()}
    return Limits(limits, assumptions)
