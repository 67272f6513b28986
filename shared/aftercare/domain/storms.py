"""Storm detection in the intake path, and how intake opens a child while an incident is open.

Per new ticket (never per occurrence or duplicate) intake makes one extra request:
- no incident open for the ticket's (model, code): one counter update on the ticket's shard
  of the current window (`count_opening`); only when that shard reaches `precheck` does the
  writer read the shards of this and the previous window (one batch read) to see whether the
  sliding total crossed the threshold, and only then does it try to open the incident;
- an incident open (intake's batch read found its pointer): one update of the incident's shard
  (`join`), whose returned count decides the diagnostics sample; no storm counter write.

The counter is per (model, storm group): the code, or the category when the policy groups it
(`storm_groups`). Opening is a conditional write of the (model, code) pointers of every code the
incident covers, with the incident: of two workers crossing at once, one opens it and the other
links its tickets to the one that is open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aftercare.domain.incidents import (
    ChildDecision,
    ChildFacts,
    Incident,
    IncidentPolicy,
    diagnose_child,
    new_incident_id,
    parts_to_hold,
    shard_of,
    storm_crossed,
    window_of,
)
from aftercare.domain.parts import StockLevel
from aftercare.domain.ports.incidents import (
    CounterShard,
    IncidentAlreadyOpen,
    IncidentWrites,
    StormTally,
)
from aftercare.domain.ports.records import DeviceRecord
from aftercare.domain.storm_groups import StormGroup, covered_codes, unknown_categories
from aftercare.domain.tickets import Ticket
from aftercare.models.parts import WantedPart

if TYPE_CHECKING:  # the catalog's own module: not imported where only a type is named
    from aftercare.domain.rules import FaultCatalog


@dataclass(frozen=True)
class StormWatch:
    """The incident side of intake: a store, the policy and the catalog (the codes of a
    grouped category)."""

    store: IncidentWrites
    policy: IncidentPolicy
    catalog: FaultCatalog = field(repr=False)

    def __post_init__(self) -> None:
        unknown = unknown_categories(self.policy.detection.group_by_category, self.catalog)
        if unknown:
            raise ValueError(f"incidents.yaml groups categories the catalog lacks: {unknown}")

    def watches(self, code: str, unclassified: bool) -> bool:
        return not unclassified and code not in self.policy.detection.exclude_codes

    def child(
        self,
        incident_id: str,
        *,
        ticket_id: str,
        device: DeviceRecord,
        firmware: str,
        wanted: list[WantedPart],
        stock: dict[tuple[str, str], StockLevel],
        routing: list[str],
        at: datetime,
    ) -> ChildDecision:
        """Join the incident's shard and decide the child's diagnostics and part holds."""
        shards = self.policy.detection.shards
        shard = shard_of(device.thing, shards)
        hold, avoided = parts_to_hold(wanted, stock, routing, self.policy.while_open.parts)
        count = self.store.join(
            ChildFacts(
                incident_id=incident_id,
                ticket_id=ticket_id,
                thing=device.thing,
                customer_id=device.customer_id,
                region=device.region,
                firmware=firmware,
                seen_at=at,
                shard=shard,
                held=sum(w.qty for w in hold),
                avoided=avoided,
            )
        )
        sampling = self.policy.while_open.diagnostics
        return ChildDecision(
            incident_id=incident_id,
            shard=shard,
            diagnose=diagnose_child(count, sampling, shards),
            wanted=hold,
            avoided=avoided,
        )

    def after_open(self, ticket: Ticket, at: datetime) -> str | None:
        """Count a ticket opened outside any incident; open the incident when the storm
        crosses the threshold. Returns the incident the ticket was linked to, if any."""
        if not self.watches(ticket.fault_code, ticket.unclassified):
            return None
        detection = self.policy.detection
        window = window_of(at, detection.window_minutes)
        expires = int((at + counter_lifetime(self.policy)).timestamp())
        shard = shard_of(ticket.thing, detection.shards)
        group = detection.group_of(ticket.fault_code, ticket.category, ticket.firmware)
        item = CounterShard(model=ticket.model, group=group.key, window=window, shard=shard)
        count = self.store.count_opening(item, ticket.ticket_id, expires)
        if count < detection.precheck:
            return None
        tally = self._tally(ticket.model, group, window)
        if not storm_crossed(tally.of(window), tally.of(window - 1), at, detection):
            return None
        return self._open(ticket, group, tally, at)

    def _tally(self, model: str, group: StormGroup, window: int) -> StormTally:
        return self.store.storm_tally(
            model, group.key, [window, window - 1], self.policy.detection.shards
        )

    def _open(self, ticket: Ticket, group: StormGroup, tally: StormTally, at: datetime) -> str:
        detection = self.policy.detection
        window = window_of(at, detection.window_minutes)
        incident = Incident(
            incident_id=new_incident_id(ticket.model, group.key, at, ticket.ticket_id),
            fault_code=ticket.fault_code,
            model=ticket.model,
            category=group.name if group.kind == "category" else None,
            firmware=group.firmware,
            codes=covered_codes(
                group, ticket.fault_code, ticket.model, self.catalog, detection.exclude_codes
            ),
            title_en=ticket.title_en,
            title_zh=ticket.title_zh,
            opened_at=at,
            updated_at=at,
            threshold=detection.threshold_devices,
            window_minutes=detection.window_minutes,
            devices_at_open=tally.of(window) + tally.of(window - 1),
            policy_version=self.policy.version,
        )
        try:
            self.store.open_incident(incident)
            incident_id = incident.incident_id
        except IncidentAlreadyOpen as other:
            incident_id = other.incident_id
        # Link what was counted, then read again: a ticket counted while the pointer was being
        # written found no incident at its own read, and is linked by this second pass.
        self.store.link_earlier(incident_id, tally.ticket_ids, at)
        again = self._tally(ticket.model, group, window)
        late = sorted(set(again.ticket_ids) - set(tally.ticket_ids))
        if late:
            self.store.link_earlier(incident_id, late, at)
        return incident_id


def counter_lifetime(policy: IncidentPolicy) -> timedelta:
    """How long a storm counter shard is kept (TTL): its window and the next two."""
    return 3 * policy.detection.window
