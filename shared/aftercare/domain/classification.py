"""Classifying an unclassified ticket (a free-text report, or a device code the catalog did not
know): support gives it a catalog code, and the ticket becomes what intake would have opened
for that code: same id, new code, the catalog's severity, priority and SLA (from when it was
opened), its parts reserved, its routine run when the catalog marks it auto-diagnose.

The ticket keeps its id: the open-fault lock moves from the old code to the new one in the same
transaction as the ticket, so if the device already has an active ticket for the new code the
classification is refused (`CodeAlreadyOpen`, naming that ticket) rather than making two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.diagnostics import auto_diagnose
from aftercare.domain.diagnostics_records import PublishFailed, TicketNotActive
from aftercare.domain.intake import IntakeRules, wanted_parts
from aftercare.domain.parts import OutOfStock, ReservationPlan, plan_reservations
from aftercare.domain.ports import (
    ClassificationPlan,
    CommandPublisher,
    ConcurrentUpdate,
    DiagnosticsStore,
    OpenContext,
    RaisedTickets,
)
from aftercare.domain.raising import UnknownSymptom
from aftercare.domain.rules import CatalogEntry
from aftercare.domain.tickets import Ticket, TicketFlag
from aftercare.models.diagnostics import DiagnosticRecord
from aftercare.models.tickets import TimelineEntry

if TYPE_CHECKING:
    from aftercare.domain.escalation import EscalationPolicy

MAX_ATTEMPTS = 5


class AlreadyClassified(Exception):
    """Only an unclassified ticket can be classified (409)."""


@dataclass(frozen=True)
class ClassifyDeps:
    tickets: RaisedTickets
    diagnostics: DiagnosticsStore
    publisher: CommandPublisher
    rules: IntakeRules
    timeout: timedelta


@dataclass(frozen=True)
class Classified:
    ticket: Ticket
    diagnostic: DiagnosticRecord | None


def plan_classification(
    ticket: Ticket,
    entry: CatalogEntry,
    *,
    opening: OpenContext,
    stock: dict[Any, Any],
    rules: IntakeRules,
    actor: str,
    now: datetime,
    escalation: EscalationPolicy,
) -> ClassificationPlan:
    """The ticket as intake would have opened it for `entry`, the parts it holds now, and its
    SLA escalation schedule moved to the new SLA."""
    from aftercare.domain.escalation import rescheduled_tracker  # see classify_ticket

    priority = rules.policy.priority_for(entry.severity, ticket.customer_tier, ticket.in_warranty)
    sla = rules.policy.sla_for(priority, ticket.customer_tier)
    reservation = plan_reservations(
        ticket_id=ticket.ticket_id,
        model=ticket.model,
        wanted=wanted_parts(entry),
        parts=opening.parts,
        routing=opening.routing,
        stock=stock,
        now=now,
        hold=rules.hold_duration,
    )
    flags = list(ticket.flags)
    if entry.always_onsite and TicketFlag.NEEDS_ONSITE_DISPATCH not in flags:
        flags.append(TicketFlag.NEEDS_ONSITE_DISPATCH)
    classified = Ticket.model_validate(
        ticket.model_dump()
        | {
            "fault_code": entry.code,
            "category": entry.category,
            "title_en": entry.title_en,
            "title_zh": entry.title_zh,
            "unclassified": False,
            "severity": entry.severity,
            "priority": priority,
            "sla_response_due": ticket.opened_at + sla.response,
            "sla_resolution_due": ticket.opened_at + sla.resolution,
            "routine": entry.routine,
            "remote_fixable": entry.remote_fixable,
            "auto_diagnose": entry.auto_diagnose,
            "suggested_parts": [p.model_dump() for p in entry.parts],
            "parts": [*ticket.parts, *reservation.lines],
            "flags": flags,
            "catalog_version": rules.catalog.version,
            "updated_at": now,
            "version": ticket.version + 1,
        }
    )
    timeline = [_classified_entry(ticket, classified, actor, now)]
    if reservation.lines or reservation.notes:
        timeline.append(_parts_entry(reservation, actor, now))
    return ClassificationPlan(
        ticket=ticket,
        classified=classified,
        timeline=timeline,
        reservation=reservation,
        escalation=rescheduled_tracker(ticket, classified, escalation, now),
    )


def _classified_entry(before: Ticket, after: Ticket, actor: str, at: datetime) -> TimelineEntry:
    return TimelineEntry(
        at=at,
        kind="classified",
        actor=actor,
        detail={
            "from": before.fault_code,
            "to": after.fault_code,
            "severity": after.severity.value,
            "priority": after.priority,
            "sla_response_due": after.sla_response_due.isoformat(),
            "sla_resolution_due": after.sla_resolution_due.isoformat(),
            "routine": after.routine,
            "auto_diagnose": after.auto_diagnose,
            "catalog_version": after.catalog_version,
        },
    )


def _parts_entry(reservation: ReservationPlan, actor: str, at: datetime) -> TimelineEntry:
    detail: dict[str, Any] = {
        "held": [
            {"sku": line.sku, "qty": line.qty, "warehouse": line.warehouse}
            for line in reservation.held
        ],
        "backordered": [{"sku": line.sku, "qty": line.qty} for line in reservation.backordered],
    }
    if reservation.notes:
        detail["notes"] = reservation.notes
    return TimelineEntry(at=at, kind="parts_reserved", actor=actor, detail=detail)


def classify_ticket(
    caller: Caller, ticket_id: str, code: str, *, deps: ClassifyDeps, now: datetime
) -> Classified:
    """Give an unclassified ticket a catalog code (staff), then run the code's routine."""
    # imported by the first classification: the support API imports this module for its routes,
    # and the escalation rules bring the dispatch rules with them
    from aftercare.domain.escalation import load_escalation

    if not caller.staff:
        raise Forbidden("only support staff classify tickets")
    entry = deps.rules.catalog.lookup(code)
    if entry is None:
        raise UnknownSymptom(f"{code!r} is not a code of the catalog")
    for _ in range(MAX_ATTEMPTS):
        ticket = deps.tickets.get_ticket(ticket_id).ticket
        _check_classifiable(ticket)
        skus = [w.sku for w in wanted_parts(entry)]
        opening = deps.tickets.load_open_context(ticket.customer_id, ticket.region, skus)
        keys = [(sku, warehouse) for sku in skus for warehouse in opening.routing]
        stock = deps.tickets.load_stock(keys, opening.stock_shards) if keys else {}
        plan = plan_classification(
            ticket, entry, opening=opening, stock=stock, rules=deps.rules,
            actor=caller.actor, now=now, escalation=load_escalation(),
        )  # fmt: skip
        try:
            deps.tickets.classify(plan)
        except (OutOfStock, ConcurrentUpdate):
            continue
        return Classified(
            ticket=plan.classified, diagnostic=_run_routine(plan.classified, deps, now)
        )
    raise ConcurrentUpdate(f"ticket {ticket_id} kept changing while it was classified")


def _check_classifiable(ticket: Ticket) -> None:
    if not ticket.active:
        raise TicketNotActive(ticket.ticket_id, ticket.status)
    if not ticket.unclassified:
        raise AlreadyClassified(f"ticket {ticket.ticket_id} is already {ticket.fault_code}")


def _run_routine(ticket: Ticket, deps: ClassifyDeps, now: datetime) -> DiagnosticRecord | None:
    """The auto-diagnosis intake's stream consumer runs for a new ticket of the code (same
    derived request id, so it runs once); a failed publish leaves it pending for the sweeper."""
    try:
        return auto_diagnose(
            deps.diagnostics, deps.publisher, ticket, timeout=deps.timeout, now=now
        )
    except (PublishFailed, TicketNotActive):
        return None
