"""Fault intake: a device's fault report becomes a new ticket, an occurrence, or nothing.

Decisions (all storage invariants are enforced by conditional writes in the store):
- a `(thing, fault_id)` takes effect once: the dedup marker is written in the same transaction
  as the ticket change, so concurrent or late redeliveries fail their condition and count as
  duplicates;
- one active ticket per device + fault code: the open-fault lock is created with the ticket;
  a report that finds it adds an occurrence (guarded by the lock's occurrence count);
- a report within the repeat window after the code's last resolution opens a repeat ticket;
- unknown fault codes are kept as *unclassified* tickets (never dropped): a device on newer
  firmware than the catalog is exactly what support needs to see.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from aftercare.domain.inbound import Contract, Rejected, RejectReason, decode, received_time
from aftercare.domain.incidents import ChildDecision
from aftercare.domain.intake_entries import (
    incident_entry,
    incident_link,
    opened_entry,
    parts_entry,
    repeat_entry,
    reported_entry,
)
from aftercare.domain.parts import OutOfStock, StockLevel, plan_reservations
from aftercare.domain.ports import (
    CorrelationPlan,
    DeviceRecord,
    DuplicateFault,
    IntakeContext,
    IntakeStore,
    LockConflict,
    NewTicketPlan,
    OpenContext,
    OpenLock,
    RequestMark,
)
from aftercare.domain.rules import CatalogEntry, FaultCatalog, ServicePolicy
from aftercare.domain.storm_groups import incident_for
from aftercare.domain.storms import StormWatch
from aftercare.domain.tickets import Ticket, TicketFlag, ticket_id_for
from aftercare.models.parts import WantedPart
from aftercare.models.payloads import MAX_FAULT_PAYLOAD_BYTES, FaultEnvelope, FaultReport
from aftercare.models.tasks import Task
from aftercare.models.tickets import Channel, Occurrence, Origin, TicketStatus, TimelineEntry

MAX_LOCK_RETRIES = 10
DEFAULT_HOLD = timedelta(hours=72)
FAULT_REPORT = Contract(FaultReport, MAX_FAULT_PAYLOAD_BYTES, noun="a fault report")
FollowUp = Callable[[Ticket], tuple[Task, TimelineEntry] | None]
"""A task to open with a new ticket (written in its transaction), decided from the ticket."""


class OutcomeKind(StrEnum):
    OPENED = "opened"
    CORRELATED = "correlated"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class IntakeOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: OutcomeKind
    thing: str
    channel: Channel = Channel.DEVICE
    fault_code: str | None = None
    fault_id: str | None = None
    ticket_id: str | None = None
    repeat_of: str | None = None
    occurrences: int | None = None
    unclassified: bool = False
    incident_id: str | None = None
    reason: RejectReason | None = None
    detail: str | None = None


class IntakeRules(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)

    catalog: FaultCatalog
    policy: ServicePolicy
    repeat_window: timedelta
    hold_duration: timedelta = DEFAULT_HOLD


# --------------------------------------------------------------------------- validation


def decode_report(
    envelope: FaultEnvelope, policy: ServicePolicy, received_at: datetime
) -> FaultReport:
    """Validate one delivered payload against the FaultReport contract or raise Rejected."""
    report = decode(envelope.payload_b64, FAULT_REPORT)
    if report.thing is not None and report.thing != envelope.thing:
        raise Rejected(
            RejectReason.THING_MISMATCH,
            f"payload names thing {report.thing!r} but was published by {envelope.thing!r}",
        )
    _check_timestamp(report, policy, received_at)
    return report


def _check_timestamp(report: FaultReport, policy: ServicePolicy, received_at: datetime) -> None:
    age = received_at - report.occurred_at
    if age > timedelta(days=policy.max_report_age_days):
        raise Rejected(
            RejectReason.STALE_REPORT,
            f"occurred_at {report.occurred_at.isoformat()} is older than "
            f"{policy.max_report_age_days} days",
        )
    if -age > timedelta(minutes=policy.max_clock_skew_minutes):
        raise Rejected(
            RejectReason.FUTURE_TIMESTAMP,
            f"occurred_at {report.occurred_at.isoformat()} is in the future",
        )


# --------------------------------------------------------------------------- planning


def _unclassified_entry(
    code: str, policy: ServicePolicy, origin: Origin | None = None
) -> CatalogEntry:
    reported = origin is not None and origin.channel is not Channel.DEVICE
    return CatalogEntry(
        code=code,
        # a person's free text has no code worth showing them: say what happens instead
        title_en="Reported problem (being triaged)" if reported else f"Unclassified fault {code}",
        title_zh="待分诊的报修问题" if reported else f"未分类故障 {code}",
        category="unclassified",
        severity=policy.unclassified_severity,
        models=(),
        routine="self_test",
        remote_fixable=False,
        auto_diagnose=False,
    )


def _occurrence(
    report: FaultReport, entry: CatalogEntry, received_at: datetime, origin: Origin
) -> Occurrence:
    return Occurrence(
        channel=origin.channel,
        raised_by=origin.raised_by,
        fault_id=report.fault_id,
        occurred_at=report.occurred_at,
        received_at=received_at,
        severity=report.severity or entry.severity,
        firmware=report.firmware,
        readings=dict(report.readings),
        message=report.message,
    )


def _dedup_expiry(policy: ServicePolicy, now: datetime) -> int:
    return int((now + timedelta(days=policy.dedup_retention_days)).timestamp())


def _repeat_of(context: IntakeContext, rules: IntakeRules, at: datetime) -> str | None:
    last = context.last_resolution
    if last is None or at - last.resolved_at > rules.repeat_window:
        return None
    return last.ticket_id


def plan_new_ticket(
    report: FaultReport,
    device: DeviceRecord,
    *,
    opening: OpenContext,
    stock: dict[tuple[str, str], StockLevel],
    context: IntakeContext,
    rules: IntakeRules,
    received_at: datetime,
    origin: Origin | None = None,
    request: RequestMark | None = None,
    follow_up: FollowUp | None = None,
    child: ChildDecision | None = None,
) -> NewTicketPlan:
    """Classify, prioritise, schedule and reserve parts for a report with no active ticket.

    A `child` of an open fleet incident holds only the parts the incident's policy let it
    hold, is auto-diagnosed only when sampled, and is linked to the incident."""
    from aftercare.domain.escalation import first_tracker, load_escalation  # APIs: at 1st use

    origin = origin or Origin.device(device.thing)
    customer = opening.customer
    catalog_entry = rules.catalog.lookup(report.code)
    entry = catalog_entry or _unclassified_entry(report.code, rules.policy, origin)
    occurrence = _occurrence(report, entry, received_at, origin)
    tier = customer.tier if customer else "standard"
    in_warranty = device.in_warranty(report.occurred_at)
    priority = rules.policy.priority_for(occurrence.severity, tier, in_warranty)
    sla = rules.policy.sla_for(priority, tier)
    repeat_of = _repeat_of(context, rules, report.occurred_at)
    ticket_id = ticket_id_for(device.thing, report.fault_id)
    reservation = plan_reservations(
        ticket_id=ticket_id,
        model=device.model,
        wanted=child.wanted if child else wanted_parts(catalog_entry),
        parts=opening.parts,
        routing=opening.routing,
        stock=stock,
        now=received_at,
        hold=rules.hold_duration,
    )
    ticket = Ticket(
        ticket_id=ticket_id,
        thing=device.thing,
        serial=device.serial,
        model=device.model,
        customer_id=device.customer_id,
        customer_tier=tier,
        region=device.region,
        fault_code=report.code,
        category=entry.category,
        title_en=entry.title_en,
        title_zh=entry.title_zh,
        unclassified=catalog_entry is None,
        severity=occurrence.severity,
        priority=priority,
        in_warranty=in_warranty,
        status=TicketStatus.OPEN,
        opened_at=received_at,
        updated_at=received_at,
        first_seen=report.occurred_at,
        last_seen=report.occurred_at,
        occurrences=1,
        latest_readings=occurrence.readings,
        latest_message=report.message,
        firmware=report.firmware,
        repeat_of=repeat_of,
        sla_response_due=received_at + sla.response,
        sla_resolution_due=received_at + sla.resolution,
        routine=entry.routine,
        remote_fixable=entry.remote_fixable,
        auto_diagnose=entry.auto_diagnose and (child is None or child.diagnose),
        incident_id=child.incident_id if child else None,
        flags=[TicketFlag.NEEDS_ONSITE_DISPATCH] if entry.always_onsite else [],
        suggested_parts=[p.model_dump() for p in entry.parts],
        catalog_version=rules.catalog.version,
        policy_version=rules.policy.version,
        opened_by_fault=report.fault_id,
        parts=[line.model_dump(mode="json") for line in reservation.lines],
        channel=origin.channel,
        raised_by=origin.raised_by,
        preferred_contact=origin.preferred_contact,
    )
    timeline = [opened_entry(ticket, customer, catalog_entry, received_at)]
    if reservation.lines or reservation.notes:
        timeline.append(parts_entry(reservation, received_at))
    if child is not None:
        timeline.append(incident_entry(child, entry.auto_diagnose, received_at))
    task = follow_up(ticket) if follow_up else None
    return NewTicketPlan(
        task=task[0] if task else None,
        task_entry=task[1] if task else None,
        ticket=ticket,
        occurrence=occurrence,
        timeline=timeline,
        dedup_expires_at=_dedup_expiry(rules.policy, received_at),
        repeat_entry=repeat_entry(ticket, received_at) if repeat_of else None,
        repeat_visit=context.last_resolution.visit_id
        if repeat_of and context.last_resolution
        else None,
        reservation=reservation,
        escalation=first_tracker(ticket, load_escalation()),
        incident_link=incident_link(ticket, child, received_at) if child else None,
        request=request.settled(ticket_id, "opened", _dedup_expiry(rules.policy, received_at))
        if request
        else None,
    )


def wanted_parts(entry: CatalogEntry | None) -> list[WantedPart]:
    return [WantedPart(sku=p.sku, qty=p.qty) for p in entry.parts] if entry else []


def plan_correlation(
    report: FaultReport,
    device: DeviceRecord,
    lock: OpenLock,
    rules: IntakeRules,
    received_at: datetime,
    *,
    origin: Origin | None = None,
    request: RequestMark | None = None,
) -> CorrelationPlan:
    origin = origin or Origin.device(device.thing)
    entry = rules.catalog.lookup(report.code) or _unclassified_entry(report.code, rules.policy)
    takes_latest = report.occurred_at >= lock.last_seen
    expires_at = _dedup_expiry(rules.policy, received_at)
    return CorrelationPlan(
        entry=None if origin.channel is Channel.DEVICE else reported_entry(report, origin),
        request=request.settled(lock.ticket_id, "already_being_handled", expires_at)
        if request
        else None,
        ticket_id=lock.ticket_id,
        thing=device.thing,
        fault_code=report.code,
        occurrence=_occurrence(report, entry, received_at, origin),
        expected_occurrences=lock.occurrences,
        last_seen=report.occurred_at if takes_latest else lock.last_seen,
        takes_latest=takes_latest,
        dedup_expires_at=expires_at,
        updated_at=received_at,
    )


# --------------------------------------------------------------------------- the use case


def intake_fault(
    envelope: FaultEnvelope,
    store: IntakeStore,
    rules: IntakeRules,
    watch: StormWatch | None = None,
) -> IntakeOutcome:
    """Apply one delivered fault report. Raises nothing for bad input: returns `rejected`.
    With a `watch`, new tickets are counted for storm detection and join an open incident."""
    received_at = received_time(envelope)
    try:
        report = decode_report(envelope, rules.policy, received_at)
    except Rejected as rejection:
        return IntakeOutcome(
            kind=OutcomeKind.REJECTED,
            thing=envelope.thing,
            reason=rejection.reason,
            detail=rejection.detail,
        )
    return apply_report(report, envelope.thing, store, rules, received_at, watch=watch)


class _Attempts:
    """What one report's attempts share: an incident child joins its incident's shard once,
    however often stock or the lock moves and the report is planned again."""

    def __init__(self, watch: StormWatch | None) -> None:
        self.watch = watch
        self.child: ChildDecision | None = None


def apply_report(
    report: FaultReport,
    thing: str,
    store: IntakeStore,
    rules: IntakeRules,
    received_at: datetime,
    *,
    origin: Origin | None = None,
    request: RequestMark | None = None,
    follow_up: FollowUp | None = None,
    watch: StormWatch | None = None,
) -> IntakeOutcome:
    """Apply one valid report, from the device itself or raised by a person (`origin`, with
    the request's Idempotency-Key as `request`, a task to open with a new ticket as
    `follow_up`): a new ticket, an occurrence on the device's
    active ticket for the code, or nothing (a duplicate). Retries when the lock or stock
    moved between read and write."""
    attempts = _Attempts(watch)
    for _ in range(MAX_LOCK_RETRIES):
        try:
            return _apply(
                report, thing, store, rules, received_at,
                origin=origin, request=request, follow_up=follow_up, attempts=attempts,
            )  # fmt: skip
        except (LockConflict, OutOfStock):
            continue
        except DuplicateFault as dup:
            return _duplicate(report, thing, dup.ticket_id)
    raise LockConflict(f"open-fault lock for {thing}/{report.code} kept changing")


def _duplicate(report: FaultReport, thing: str, ticket_id: str | None) -> IntakeOutcome:
    return IntakeOutcome(
        kind=OutcomeKind.DUPLICATE,
        thing=thing,
        fault_code=report.code,
        fault_id=report.fault_id,
        ticket_id=ticket_id,
    )


def _apply(
    report: FaultReport,
    thing: str,
    store: IntakeStore,
    rules: IntakeRules,
    received_at: datetime,
    *,
    origin: Origin | None,
    request: RequestMark | None,
    follow_up: FollowUp | None = None,
    attempts: _Attempts,
) -> IntakeOutcome:
    context = store.load_intake_context(thing, report.code, report.fault_id)
    if context.seen:
        return _duplicate(report, thing, context.seen_in_ticket)
    if context.device is None:
        return IntakeOutcome(
            kind=OutcomeKind.REJECTED,
            thing=thing,
            fault_code=report.code,
            fault_id=report.fault_id,
            reason=RejectReason.UNKNOWN_DEVICE,
            detail=f"thing {thing!r} is not in the device registry",
        )
    if context.lock is not None:
        plan = plan_correlation(
            report, context.device, context.lock, rules, received_at, origin=origin, request=request
        )
        store.add_occurrence(plan)
        return IntakeOutcome(
            kind=OutcomeKind.CORRELATED,
            thing=thing,
            fault_code=report.code,
            fault_id=report.fault_id,
            ticket_id=plan.ticket_id,
            occurrences=plan.expected_occurrences + 1,
        )
    device = context.device
    wanted = wanted_parts(rules.catalog.lookup(report.code))
    skus = [w.sku for w in wanted]
    opening = store.load_open_context(device.customer_id, device.region, skus)
    keys = [(sku, warehouse) for sku in skus for warehouse in opening.routing]
    stock = store.load_stock(keys, opening.stock_shards) if keys else {}
    child = _child(
        report, device, context, attempts,
        wanted=wanted, stock=stock, opening=opening, at=received_at,
    )  # fmt: skip
    new = plan_new_ticket(
        report,
        device,
        opening=opening,
        stock=stock,
        context=context,
        rules=rules,
        received_at=received_at,
        origin=origin,
        request=request,
        follow_up=follow_up,
        child=child,
    )
    store.open_ticket(new)
    incident_id = child.incident_id if child else None
    if attempts.watch is not None and child is None:
        incident_id = attempts.watch.after_open(new.ticket, received_at)
    return IntakeOutcome(
        kind=OutcomeKind.OPENED,
        thing=thing,
        fault_code=report.code,
        fault_id=report.fault_id,
        ticket_id=new.ticket.ticket_id,
        repeat_of=new.ticket.repeat_of,
        occurrences=1,
        unclassified=new.ticket.unclassified,
        incident_id=incident_id,
    )


def _child(
    report: FaultReport,
    device: DeviceRecord,
    context: IntakeContext,
    attempts: _Attempts,
    *,
    wanted: list[WantedPart],
    stock: dict[tuple[str, str], StockLevel],
    opening: OpenContext,
    at: datetime,
) -> ChildDecision | None:
    """The child decision when an incident is open for the device's model and this code."""
    watch = attempts.watch
    incident_id = incident_for(context.active_incidents, device.model, report.firmware)
    if watch is None or incident_id is None:
        return None
    if attempts.child is None or attempts.child.incident_id != incident_id:
        attempts.child = watch.child(
            incident_id,
            ticket_id=ticket_id_for(device.thing, report.fault_id),
            device=device,
            firmware=report.firmware,
            wanted=wanted,
            stock=stock,
            routing=opening.routing,
            at=at,
        )
    return attempts.child
