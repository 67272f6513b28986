"""What one storm counts: a fault code, or every code of a fault category the policy groups.

`incidents.yaml`'s `detection.group_by_category` lists the catalog categories whose codes make
one storm (a bad batch of power supplies shows as over- *and* under-voltage); every other code
is its own storm. The group's `key` names the windowed counter and the reset after a resolve;
its two kinds carry different prefixes (`code=`, `category=`), so a code and a category of the
same spelling never share a counter. The open incident is found by each covered code's
`ACTIVE#<code>` pointer, so intake's one batch read is unchanged.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from pydantic import BaseModel, ConfigDict

from aftercare.domain.rules import FaultCatalog


class StormGroup(BaseModel):
    """One storm's identity within a model: a code, or a category of the catalog."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["code", "category"]
    name: str

    @property
    def key(self) -> str:
        """The counter's group segment (`code=<code>` or `category=<category>`)."""
        return f"{self.kind}={self.name}"


def storm_group(code: str, category: str, grouped: Collection[str]) -> StormGroup:
    """The storm a ticket of `code` (in `category`) counts toward."""
    if category in grouped:
        return StormGroup(kind="category", name=category)
    return StormGroup(kind="code", name=code)


def covered_codes(group: StormGroup, code: str, model: str, catalog: FaultCatalog) -> list[str]:
    """The codes an incident of `group` on `model` covers: the category's codes that a device
    of the model reports (and `code`, the one that opened it), or just `code`."""
    if group.kind == "code":
        return [code]
    same = {c for c in catalog.codes_for_model(model) if catalog.codes[c].category == group.name}
    return sorted(same | {code})


def unknown_categories(grouped: Collection[str], catalog: FaultCatalog) -> list[str]:
    """The grouped categories no catalog code has (a typo in incidents.yaml)."""
    known = {entry.category for entry in catalog.codes.values()}
    return sorted(set(grouped) - known)
