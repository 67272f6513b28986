"""Fleet incidents (problem management): the policy, the records and the pure decisions.

A *storm* is the same fault code (or, for the categories `incidents.yaml` groups, any code of
one fault category: `storm_groups`) opening tickets on many devices of one model within a window
(`incidents.yaml`). Crossing the threshold opens one fleet incident; device tickets opened
while it is open are its *children* (they keep their own SLA and customer and show
`incident_id`), and so are the tickets opened in the window before the threshold.

While an incident is open the policy decides, per child: whether it is auto-diagnosed (the first
K, then one in N: `diagnose_child`), which parts are held (only while the stock covers them
with `keep_free` to spare: `parts_to_hold`; the rest is backorder demand on the incident), and
that the customer hears of it once per incident (`known_issue`) instead of per ticket.

Counters that every report of a storm updates are sharded (summed on read): the windowed storm
counter per (model, storm group, window, shard) and the incident's statistics per (incident, shard);
see the IncidentsTable comment in template.yaml for the arithmetic.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from aftercare.data import DATA_FOLDER, load
from aftercare.domain.parts import StockLevel
from aftercare.domain.storm_groups import StormGroup, pointer_name, storm_group
from aftercare.models.parts import WantedPart


class _Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Detection(_Policy):
    window_minutes: Annotated[int, Field(ge=1, le=24 * 60)]
    threshold_devices: Annotated[int, Field(ge=2)]
    shards: Annotated[int, Field(ge=1, le=64)]
    exclude_codes: tuple[str, ...] = ()
    # catalog fault categories whose codes count as one storm (the rest: one storm per code)
    group_by_category: tuple[str, ...] = ()
    # one storm per firmware version too (else all versions of a model count together)
    per_firmware: bool = False

    @field_validator("group_by_category")
    @classmethod
    def _grouped_once_and_classified(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"a category is listed twice: {list(value)}")
        if "unclassified" in value:
            raise ValueError("unclassified tickets make no storm: they cannot be grouped")
        return value

    def group_of(self, code: str, category: str, firmware: str) -> StormGroup:
        """The storm a ticket of `code` in `category` on `firmware` counts toward."""
        split = firmware if self.per_firmware else None
        return storm_group(code, category, self.group_by_category, split)

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)

    @property
    def precheck(self) -> int:
        """A shard's count from which its writer sums all shards: half its fair share of the
        threshold, and never the first ticket of a shard, so a calm window (a ticket or so per
        shard) costs no read and a storm is still seen on its way up."""
        return max(2, math.ceil(self.threshold_devices / (2 * self.shards)))


class DiagnosticsSampling(_Policy):
    first: Annotated[int, Field(ge=0)]
    then_one_in: Annotated[int, Field(ge=1)]


class PartsWhileOpen(_Policy):
    reserve: Literal["within_stock", "never"]
    keep_free: Annotated[int, Field(ge=0)] = 0


class WhileOpen(_Policy):
    diagnostics: DiagnosticsSampling
    parts: PartsWhileOpen
    customer_message: Literal["known_issue", "per_ticket"]


class ResolvePolicy(_Policy):
    campaign_per_second: Annotated[float, Field(gt=0, le=1000)]
    routine: str
    answer_within_minutes: Annotated[int, Field(ge=1)]
    # One queue message (one worker invocation) sends this many seconds of the campaign.
    page_seconds: Annotated[int, Field(ge=1, le=300)] = 20

    @property
    def page_size(self) -> int:
        """Children per campaign page: `page_seconds` at `campaign_per_second` (at least 1)."""
        return max(1, int(self.campaign_per_second * self.page_seconds))


class IncidentPolicy(_Policy):
    version: str
    detection: Detection
    while_open: WhileOpen
    resolve: ResolvePolicy

    def with_threshold(self, devices: int) -> IncidentPolicy:
        """This policy with a deployment's own storm threshold (the template parameter
        `IncidentThresholdDevices`); 0 keeps `incidents.yaml`'s."""
        return self._with_setting("detection", "threshold_devices", devices)

    def with_page_seconds(self, seconds: int) -> IncidentPolicy:
        """This policy with a deployment's own campaign page length (the template parameter
        `IncidentCampaignPageSeconds`); 0 keeps `incidents.yaml`'s."""
        return self._with_setting("resolve", "page_seconds", seconds)

    def _with_setting(self, section: str, name: str, value: int) -> IncidentPolicy:
        """`section.name` replaced by a deployment's `value` and validated like the file's
        (0: the template parameter is unset, the file's value stays)."""
        if value == 0:
            return self
        part = getattr(self, section)
        changed = type(part).model_validate({**part.model_dump(), name: value})
        return self.model_copy(update={section: changed})


@cache
def load_incident_policy() -> IncidentPolicy:
    """The incident policy shipped with this build (shared layer data)."""
    data = load(DATA_FOLDER, "incidents.yaml")
    data["version"] = str(data["version"])
    return IncidentPolicy.model_validate(data)


# --------------------------------------------------------------------------- windows, shards


def window_of(at: datetime, minutes: int) -> int:
    """The tumbling window `at` falls in (minutes since the epoch // window length)."""
    return int(at.timestamp() // 60) // minutes


def window_start(window: int, minutes: int) -> datetime:
    return datetime.fromtimestamp(window * minutes * 60, tz=UTC)


def shard_of(key: str, shards: int) -> int:
    """A stable shard for `key` (a thing): the same device always updates the same shard."""
    return zlib.crc32(key.encode()) % shards


def sliding_total(current: int, previous: int, at: datetime, minutes: int) -> float:
    """Devices in the last window length: the current window plus the previous one weighted by
    the share of it still inside the sliding window (the usual two-bucket estimate)."""
    start = window_start(window_of(at, minutes), minutes)
    elapsed = (at - start) / timedelta(minutes=minutes)
    return current + previous * max(0.0, 1.0 - elapsed)


def storm_crossed(current: int, previous: int, at: datetime, detection: Detection) -> bool:
    total = sliding_total(current, previous, at, detection.window_minutes)
    return total >= detection.threshold_devices


def minute_of(at: datetime) -> str:
    """The trend bucket of `at`: `YYYYMMDDHHMM` (UTC)."""
    return at.astimezone(UTC).strftime("%Y%m%d%H%M")


# --------------------------------------------------------------------------- records


class IncidentStatus(StrEnum):
    OPEN = "open"
    MITIGATING = "mitigating"  # a fix is being rolled out (a reset campaign is running)
    RESOLVED = "resolved"


class FixKind(StrEnum):
    FIRMWARE_FIX = "firmware_fix"
    RESET_COMPONENT = "reset_component"


class CampaignCursor(BaseModel):
    """Where a campaign's walk over the child links stands: the statistics shard it is in, and
    the last ticket id of that shard already walked (None: the shard's start)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    shard: Annotated[int, Field(ge=0)] = 0
    after: str | None = None


class Campaign(BaseModel):
    """A fix campaign on its incident record: what, who, when, and how far it got (a queue
    worker sends it one page at a time, see `aftercare.domain.incident_campaign`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    campaign_id: str
    fix: FixKind
    started_by: str
    started_at: AwareDatetime
    page_size: Annotated[int, Field(ge=1)]
    pages_done: int = 0
    cursor: CampaignCursor | None = Field(default_factory=CampaignCursor)  # None: all sent
    sent: int = 0
    not_sent: int = 0
    already_closed: int = 0
    finished_at: AwareDatetime | None = None

    @property
    def walked(self) -> int:
        return self.sent + self.not_sent + self.already_closed


class CampaignPage(BaseModel):
    """The campaign queue's message: send page `page` of `campaign_id`, from `cursor`."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    incident_id: str
    campaign_id: str
    page: Annotated[int, Field(ge=0)]
    cursor: CampaignCursor


class Incident(BaseModel):
    """The incident record (one item); its statistics live in shards (`IncidentStats`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    incident_id: str
    fault_code: str  # the code whose ticket opened it
    model: str
    category: str | None = None  # set when its storm grouped the codes of this category
    codes: list[str] = Field(default_factory=list)  # the codes it covers (empty: fault_code)
    firmware: str | None = None  # set when its storm was one firmware version
    title_en: str = ""
    title_zh: str = ""
    status: IncidentStatus = IncidentStatus.OPEN
    opened_at: AwareDatetime
    threshold: int
    window_minutes: int
    devices_at_open: int
    policy_version: str
    updated_at: AwareDatetime
    fix: FixKind | None = None
    fix_note: str | None = None
    campaign_request_id: str | None = None
    resolved_at: AwareDatetime | None = None
    resolved_by: str | None = None
    children_fixed: int = 0
    children_left_open: int = 0
    campaign: Campaign | None = None

    @property
    def storm(self) -> StormGroup:
        """The storm group it was opened for (its counter is reset when it is resolved)."""
        if self.category is not None:
            return StormGroup(kind="category", name=self.category, firmware=self.firmware)
        return StormGroup(kind="code", name=self.fault_code, firmware=self.firmware)

    @property
    def pointer(self) -> str:
        """Its attribute on each covered code's `ACTIVE` item."""
        return pointer_name(self.model, self.firmware)

    @property
    def covered_codes(self) -> list[str]:
        """The codes whose `ACTIVE` pointers name it while it is open."""
        return self.codes or [self.fault_code]


class IncidentStats(BaseModel):
    """An incident's counters, summed over its shards (each shard item holds the same keys)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    children: int = 0
    linked_before: int = 0  # tickets opened in the window before the threshold, linked at opening
    joined: int = 0  # children opened while it was open (the diagnostics sample counts these)
    diagnostics_sent: int = 0
    diagnostics_skipped: int = 0
    reservations_held: int = 0
    reservations_avoided: int = 0
    messages_sent: int = 0
    messages_saved: int = 0
    backorder: dict[str, int] = Field(default_factory=dict)
    firmware_versions: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    trend: dict[str, int] = Field(default_factory=dict)
    first_seen: AwareDatetime | None = None
    last_seen: AwareDatetime | None = None

    @classmethod
    def summed(cls, shards: Iterable[IncidentStats]) -> IncidentStats:
        total: dict[str, Any] = {}
        backorder: dict[str, int] = {}
        trend: dict[str, int] = {}
        firmware: set[str] = set()
        regions: set[str] = set()
        firsts, lasts = [], []
        for shard in shards:
            for name in COUNTERS:
                total[name] = total.get(name, 0) + getattr(shard, name)
            _add(backorder, shard.backorder)
            _add(trend, shard.trend)
            firmware.update(shard.firmware_versions)
            regions.update(shard.regions)
            firsts += [shard.first_seen] if shard.first_seen else []
            lasts += [shard.last_seen] if shard.last_seen else []
        return cls(
            **total,
            backorder=backorder,
            trend=dict(sorted(trend.items())),
            firmware_versions=sorted(firmware),
            regions=sorted(regions),
            first_seen=min(firsts) if firsts else None,
            last_seen=max(lasts) if lasts else None,
        )


COUNTERS = (
    "children",
    "linked_before",
    "joined",
    "diagnostics_sent",
    "diagnostics_skipped",
    "reservations_held",
    "reservations_avoided",
    "messages_sent",
    "messages_saved",
)


def _add(into: dict[str, int], more: Mapping[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value


class ChildFacts(BaseModel):
    """What one child adds to its incident's shard (counters, sets, trend) and its link."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    incident_id: str
    ticket_id: str
    thing: str
    customer_id: str
    region: str
    firmware: str
    seen_at: AwareDatetime
    shard: int
    diagnosed: bool = False
    held: int = 0
    avoided: dict[str, int] = Field(default_factory=dict)  # sku -> qty not held (backorder)


class ChildDecision(BaseModel):
    """How intake opens a child ticket while its incident is open."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    incident_id: str
    shard: int
    diagnose: bool
    wanted: list[WantedPart]  # the parts to hold (the others are backorder demand)
    avoided: dict[str, int] = Field(default_factory=dict)


# --------------------------------------------------------------------------- decisions


def diagnose_child(shard_children: int, sampling: DiagnosticsSampling, shards: int) -> bool:
    """Whether the `shard_children`-th child of one shard is auto-diagnosed: the first
    `first` of the incident (spread evenly: ceil(first / shards) per shard), then one in
    `then_one_in` (per shard, so one in N overall)."""
    first_per_shard = math.ceil(sampling.first / shards) if sampling.first else 0
    if shard_children <= first_per_shard:
        return True
    return (shard_children - first_per_shard) % sampling.then_one_in == 0


def sampled(joined: int, sampling: DiagnosticsSampling, shards: int) -> int:
    """How many of a shard's `joined` children `diagnose_child` chose."""
    first_per_shard = math.ceil(sampling.first / shards) if sampling.first else 0
    if joined <= first_per_shard:
        return joined
    return first_per_shard + (joined - first_per_shard) // sampling.then_one_in


def parts_to_hold(
    wanted: Sequence[WantedPart],
    stock: Mapping[tuple[str, str], StockLevel],
    routing: Sequence[str],
    policy: PartsWhileOpen,
) -> tuple[list[WantedPart], dict[str, int]]:
    """Split a child's wanted parts into those to hold (the stock covers them and keeps
    `keep_free` units for everyone else) and the demand not held (sku -> qty). Decided before
    the reservation path is called, from the stock levels intake read anyway."""
    hold: list[WantedPart] = []
    avoided: dict[str, int] = {}
    for want in wanted:
        free = max(
            (level.available for wh in routing if (level := stock.get((want.sku, wh)))),
            default=0,
        )
        if policy.reserve == "within_stock" and free - want.qty >= policy.keep_free:
            hold.append(want)
        else:
            avoided[want.sku] = avoided.get(want.sku, 0) + want.qty
    return hold, avoided


def new_incident_id(model: str, code: str, at: datetime, salt: str) -> str:
    stamp = at.astimezone(UTC).strftime("%Y%m%d%H%M")
    digest = zlib.crc32(f"{model}|{code}|{salt}".encode()) & 0xFFFFFF
    return f"INC-{stamp}-{digest:06x}"
