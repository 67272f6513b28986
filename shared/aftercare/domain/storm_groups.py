"""What one storm counts: a fault code, or every code of a fault category the policy groups.

`incidents.yaml`'s `detection.group_by_category` lists the catalog categories whose codes make
one storm (a bad batch of power supplies shows as over- *and* under-voltage); every other code
is its own storm. The group's `key` names the windowed counter and the reset after a resolve;
its two kinds carry different prefixes (`code=`, `category=`), so a code and a category of the
same spelling never share a counter. The open incident is found by each covered code's
`ACTIVE#<code>` pointer, so intake's one batch read is unchanged.

With `detection.per_firmware`, a storm is also one firmware version: the group's key and the
pointer's attribute name carry the (percent-encoded) firmware, so two versions never share a
counter or an incident.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # the catalog's own module: not imported where only a type is named
    from aftercare.domain.rules import FaultCatalog


class StormGroup(BaseModel):
    """One storm's identity within a model: a code, or a category of the catalog."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["code", "category"]
    name: str
    firmware: str | None = None  # set when the policy splits storms per firmware

    @property
    def key(self) -> str:
        """The counter's group segment (`code=<code>` or `category=<category>`, then
        `@fw=<firmware>` when split per firmware)."""
        split = f"@fw={quote(self.firmware, safe='')}" if self.firmware is not None else ""
        return f"{self.kind}={self.name}{split}"


def storm_group(
    code: str, category: str, grouped: Collection[str], firmware: str | None = None
) -> StormGroup:
    """The storm a ticket of `code` (in `category`, on `firmware` if split) counts toward."""
    if category in grouped:
        return StormGroup(kind="category", name=category, firmware=firmware)
    return StormGroup(kind="code", name=code, firmware=firmware)


def pointer_name(model: str, firmware: str | None) -> str:
    """The `ACTIVE#<code>` attribute naming an open incident: the model, or the model and
    firmware for a storm split per firmware."""
    return model if firmware is None else f"{model}@{quote(firmware, safe='')}"


def incident_for(active: Mapping[str, str], model: str, firmware: str) -> str | None:
    """The open incident a new ticket of `model` on `firmware` joins, from the code's pointer
    attributes intake read: one for its firmware, else one for the whole model."""
    return active.get(pointer_name(model, firmware)) or active.get(model)


def covered_codes(
    group: StormGroup,
    code: str,
    model: str,
    catalog: FaultCatalog,
    excluded: Collection[str] = (),
) -> list[str]:
    """The codes an incident of `group` on `model` covers: the category's codes that a device
    of the model reports, but for the `excluded` ones (they never make or join an incident),
    and `code`, the one that opened it; or just `code`."""
    if group.kind == "code":
        return [code]
    same = {
        c
        for c in catalog.codes_for_model(model)
        if catalog.codes[c].category == group.name and c not in excluded
    }
    return sorted(same | {code})


def unknown_categories(grouped: Collection[str], catalog: FaultCatalog) -> list[str]:
    """The grouped categories no catalog code has (a typo in incidents.yaml)."""
    known = {entry.category for entry in catalog.codes.values()}
    return sorted(set(grouped) - known)
