"""The windowed storm counter of issue 15 (built: `aftercare.domain.storms`) in the scale model:
its items as hot keys, and the requests it adds per new fault.

What intake does per new ticket outside an open incident (template.yaml, IncidentsTable I2/I3):
one `UpdateItem ADD n, tickets` on the ticket's shard of its (model, code or category) and
window - measured: bench/results.json's capacity step "new" has FaultIntake's one UpdateItem
and its write units on the incidents table (`Measured.storm_counter_wcu_per_fault`); and, once
that shard's count reaches the precheck, one consistent BatchGetItem of the shards of this and
the previous window - derived: the capacity step's three devices stay under the precheck, so
no read was captured; 1 RCU per item up to 4 KB, as DynamoDB charges strongly consistent reads.

Stated, not measured:
- the counter item holds the counted ticket ids (a string set: `ticket_id_bytes` each over
  `item_base_bytes` for keys, count and TTL), so in a storm no incident stops (today's design in
  this model; a deployment whose threshold is out of reach, like the bench's) it grows through
  its window, and an update costs 1 WCU per KB of the item (DynamoDB charges an update by the
  larger of the item before and after), a read 1 RCU per 4 KB; the item may not pass 400 KB;
- every counted ticket of the storm reads (its shard is past the precheck: all but
  `shards x (precheck - 1)` tickets a window, none of them in a storm's minute);
- the storm's tickets are spread evenly over the shards (crc32 of the thing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aftercare.domain.incidents import IncidentPolicy as ShippedPolicy

from infra.scale.flow import MINUTE_S

KB = 1024
READ_UNIT_BYTES = 4 * KB


@dataclass(frozen=True)
class StormCounter:
    """incidents.yaml's detection settings as the model needs them (8 shards as shipped)."""

    shards: int = 8
    window_minutes: int = 10
    precheck: int = 2
    ticket_id_bytes: int = 14  # "T-" + 12 base32 characters (`ticket_id_for`)
    item_base_bytes: int = 100  # pk STORM#<model>#<group>#<window>#<shard>, sk, n, expires_at

    @classmethod
    def shipped(cls, policy: ShippedPolicy, shards: int | None = None) -> StormCounter:
        detection = policy.detection
        if shards is not None:
            detection = detection.model_copy(update={"shards": shards})
        return cls(
            shards=detection.shards,
            window_minutes=detection.window_minutes,
            precheck=detection.precheck,
        )

    def item_bytes(self, counted_on_shard: float) -> float:
        return self.item_base_bytes + counted_on_shard * self.ticket_id_bytes


def units(size_bytes: float, unit_bytes: int) -> float:
    """Capacity units of one request on an item of `size_bytes` (rounded up, at least 1)."""
    return float(max(1, math.ceil(size_bytes / unit_bytes)))


@dataclass
class CounterFlow:
    """The storm's counter shards, minute by minute: tickets counted per window."""

    counter: StormCounter
    measured_wcu: float  # measured WCU of one update on a small counter item
    counted: dict[int, float] = field(default_factory=dict)

    def minute(self, m: int, storm_counted: float) -> dict[str, float]:
        """Per-key load of one storm counter shard in minute `m`, `storm_counted` tickets of
        the storm counted (0 once its incident is open: children join the incident)."""
        c = self.counter
        window = m // c.window_minutes
        self.counted[window] = self.counted.get(window, 0.0) + storm_counted
        now = c.item_bytes(self.counted[window] / c.shards)
        before = c.item_bytes(self.counted.get(window - 1, 0.0) / c.shards)
        updates = storm_counted / MINUTE_S / c.shards
        readers = storm_counted / MINUTE_S  # each reads every shard of both windows
        per_update = max(self.measured_wcu, units(now, KB))
        return {
            "counter_wcu": updates * per_update,
            # the hour's write units above the measured update (the item's growth)
            "counter_extra_wru": storm_counted * (per_update - self.measured_wcu),
            "counter_rcu": readers * units(max(now, before), READ_UNIT_BYTES),
            "counter_item_kb": now / KB,
            # the hour's read units: every reader reads each shard of both windows
            "counter_reads_rru": readers
            * MINUTE_S
            * c.shards
            * (units(now, READ_UNIT_BYTES) + units(before, READ_UNIT_BYTES)),
        }
