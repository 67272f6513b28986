"""The records and errors the ports carry (the Protocols are beside this module)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.parts import LineChange, PartInfo, ReservationPlan, StockDelta
from aftercare.domain.tickets import Ticket
from aftercare.models.parts import PartsLine
from aftercare.models.tasks import Task
from aftercare.models.tickets import CustomerTier, Occurrence, TicketFlag, TimelineEntry
from aftercare.models.visits import VisitRecord


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class DeviceRecord(_Record):
    thing: str
    serial: str
    model: str
    customer_id: str
    region: str
    activated_at: date
    warranty_until: date
    firmware: str

    def in_warranty(self, at: datetime) -> bool:
        return at.date() <= self.warranty_until


class CustomerRecord(_Record):
    customer_id: str
    name: str
    tier: CustomerTier = CustomerTier.STANDARD
    language: str = "en"
    time_zone: str = "UTC"
    channels: list[str] = Field(default_factory=list)
    contact: dict[str, str] = Field(default_factory=dict)
    # VIPs: engineers the customer prefers (dispatch's `vip_preferred` score term).
    preferred_engineers: list[str] = Field(default_factory=list)


class OpenLock(_Record):
    """The open-fault lock of a device + fault code: which ticket is active for it."""

    ticket_id: str
    occurrences: int
    last_seen: AwareDatetime


class LastResolution(_Record):
    ticket_id: str
    resolved_at: AwareDatetime
    visit_id: str | None = None  # the booking whose visit fixed it (a repeat counts against it)


class IntakeContext(_Record):
    """Everything intake reads about one report, fetched in one batch read."""

    device: DeviceRecord | None
    lock: OpenLock | None
    last_resolution: LastResolution | None
    seen_in_ticket: str | None = Field(
        default=None, description="ticket id recorded for this (thing, fault_id), if any"
    )
    seen: bool = False
    # model -> open fleet incident for the report's code (the incidents table's pointer item)
    active_incidents: dict[str, str] = Field(default_factory=dict)


class OpenContext(_Record):
    """What opening a ticket reads besides the device: customer, warehouse routing, parts."""

    customer: CustomerRecord | None
    routing: list[str] = Field(default_factory=list)
    parts: dict[str, PartInfo] = Field(default_factory=dict)

    @property
    def stock_shards(self) -> dict[str, int]:
        """Each part's stock shard count, for the stock read (`PartsContext.load_stock`)."""
        return {sku: info.stock_shards for sku, info in self.parts.items()}


class EscalationTracker(_Record):
    """Where a ticket is in its escalation schedule."""

    ticket_id: str
    index: int
    next_at: AwareDatetime
    bucket: str

    @property
    def next_epoch(self) -> int:
        return int(self.next_at.timestamp())


class RequestMark(_Record):
    """An `Idempotency-Key` as stored: who used it (`scope`), a fingerprint of the request it
    first came with, and the ticket that request opened or joined. Written in the same
    transaction as that ticket change, only if new, so a key takes effect once."""

    scope: str
    key: str
    fingerprint: str
    ticket_id: str = ""
    outcome: str = ""
    expires_at: int = 0

    def settled(self, ticket_id: str, outcome: str, expires_at: int) -> RequestMark:
        return self.model_copy(
            update={"ticket_id": ticket_id, "outcome": outcome, "expires_at": expires_at}
        )


class NewTicketPlan(_Record):
    ticket: Ticket
    occurrence: Occurrence
    timeline: list[TimelineEntry]
    dedup_expires_at: int
    repeat_entry: TimelineEntry | None = None
    repeat_visit: str | None = None  # the visit that fixed the earlier ticket, if one did
    escalation: EscalationTracker | None = None  # its SLA escalation schedule's first step
    reservation: ReservationPlan = Field(
        default_factory=lambda: ReservationPlan(lines=[], deltas=[])
    )
    request: RequestMark | None = None  # the Idempotency-Key of a person's request, if any
    task: Task | None = None  # a staff task opened with the ticket (a VIP callback)
    task_entry: TimelineEntry | None = None  # the task's timeline entry
    incident_link: IncidentLink | None = None  # a child of an open fleet incident


class CorrelationPlan(_Record):
    ticket_id: str
    thing: str
    fault_code: str
    occurrence: Occurrence
    expected_occurrences: int
    last_seen: AwareDatetime
    takes_latest: bool
    dedup_expires_at: int
    updated_at: AwareDatetime
    entry: TimelineEntry | None = None  # a person's report says so on the timeline
    request: RequestMark | None = None  # the Idempotency-Key of a person's request, if any


class ClassificationPlan(_Record):
    """An unclassified ticket getting a catalog code: the record before (`ticket`, for its
    version and old lock) and after (`classified`), its timeline and the parts it holds now."""

    ticket: Ticket
    classified: Ticket
    timeline: list[TimelineEntry]
    reservation: ReservationPlan
    escalation: EscalationTracker | None  # the SLA escalation schedule moved (None: none left)


class TicketDetail(_Record):
    ticket: Ticket
    occurrences: list[Occurrence]
    timeline: list[TimelineEntry]
    visits: list[VisitRecord] = Field(default_factory=list)


class PartsChange(_Record):
    """Parts lines of one ticket changing outside a status change (expiry, manual hold/release)."""

    ticket: Ticket
    changes: list[LineChange]
    entry: TimelineEntry
    new_lines: dict[int, PartsLine] = Field(default_factory=dict)
    new_deltas: list[StockDelta] = Field(default_factory=list)
    replaced_lines: dict[int, PartsLine] = Field(
        default_factory=dict, description="lines that new_lines overwrite (e.g. a backorder)"
    )
    visit: VisitRecord | None = Field(default=None, description="a visit record written with it")
    flags: list[TicketFlag] | None = Field(default=None, description="replaces the flags if given")
    dispatch_reason: str | None = None
