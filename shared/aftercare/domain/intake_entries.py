"""Timeline entries and the incident link intake writes with a ticket (split from
`aftercare.domain.intake`, which decides; these say what the ticket's history records)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import ChildDecision
from aftercare.domain.parts import ReservationPlan
from aftercare.domain.ports import CustomerRecord
from aftercare.domain.rules import CatalogEntry
from aftercare.domain.tickets import Ticket
from aftercare.models.payloads import FaultReport
from aftercare.models.tickets import Channel, Origin, TimelineEntry


def parts_entry(reservation: ReservationPlan, at: datetime) -> TimelineEntry:
    detail: dict[str, Any] = {
        "held": [
            {
                "sku": line.sku,
                "qty": line.qty,
                "warehouse": line.warehouse,
                "unit_price": line.unit_price,
                "hold_expires_at": str(line.hold_expires_at),
            }
            for line in reservation.held
        ],
        "backordered": [{"sku": line.sku, "qty": line.qty} for line in reservation.backordered],
    }
    if reservation.notes:
        detail["notes"] = reservation.notes
    return TimelineEntry(at=at, kind="parts_reserved", actor="fault-intake", detail=detail)


def opened_entry(
    ticket: Ticket,
    customer: CustomerRecord | None,
    catalog_entry: CatalogEntry | None,
    at: datetime,
) -> TimelineEntry:
    detail: dict[str, Any] = {
        "severity": ticket.severity.value,
        "priority": ticket.priority,
        "customer_tier": ticket.customer_tier,
        "in_warranty": ticket.in_warranty,
        "sla_response_due": ticket.sla_response_due.isoformat(),
        "sla_resolution_due": ticket.sla_resolution_due.isoformat(),
        "catalog_version": ticket.catalog_version,
        "policy_version": ticket.policy_version,
        "channel": ticket.channel.value,
        "raised_by": ticket.raised_by,
    }
    if ticket.preferred_contact:
        detail["preferred_contact"] = ticket.preferred_contact
    if ticket.repeat_of:
        detail["repeat_of"] = ticket.repeat_of
    if catalog_entry is None and ticket.channel is not Channel.DEVICE:
        detail["unclassified"] = "free-text report; needs triage (classify with a catalog code)"
    elif catalog_entry is None:
        detail["unclassified"] = "fault code not in catalog; needs triage"
    elif ticket.model not in catalog_entry.models:
        detail["model_mismatch"] = f"catalog does not list {ticket.fault_code} for {ticket.model}"
    if customer is None:
        detail["customer_missing"] = f"no customer record {ticket.customer_id}; standard tier used"
    actor = "fault-intake" if ticket.channel is Channel.DEVICE else str(ticket.raised_by)
    return TimelineEntry(at=at, kind="opened", actor=actor, detail=detail)


def repeat_entry(ticket: Ticket, at: datetime) -> TimelineEntry:
    return TimelineEntry(
        at=at,
        kind="repeat_reported",
        actor="fault-intake",
        detail={"new_ticket": ticket.ticket_id, "fault_code": ticket.fault_code},
    )


def reported_entry(report: FaultReport, origin: Origin) -> TimelineEntry:
    """A person reported what the ticket is already about (it becomes an occurrence)."""
    detail: dict[str, Any] = {
        "channel": origin.channel.value,
        "raised_by": origin.raised_by,
        "fault_code": report.code,
        "fault_id": report.fault_id,
    }
    if report.message:
        detail["description"] = report.message
    if origin.preferred_contact:
        detail["preferred_contact"] = origin.preferred_contact
    return TimelineEntry(
        at=report.occurred_at, kind="reported_again", actor=origin.raised_by, detail=detail
    )


def incident_entry(child: ChildDecision, catalog_diagnoses: bool, at: datetime) -> TimelineEntry:
    detail: dict[str, Any] = {
        "incident_id": child.incident_id,
        "auto_diagnose": "sampled" if child.diagnose else "skipped (incident sample)",
    }
    if not catalog_diagnoses:
        detail["auto_diagnose"] = "not for this code"
    if child.avoided:
        detail["not_held"] = [{"sku": s, "qty": q} for s, q in sorted(child.avoided.items())]
    return TimelineEntry(at=at, kind="incident_linked", actor="fault-intake", detail=detail)


def incident_link(ticket: Ticket, child: ChildDecision, at: datetime) -> IncidentLink:
    return IncidentLink(
        incident_id=child.incident_id,
        ticket_id=ticket.ticket_id,
        thing=ticket.thing,
        customer_id=ticket.customer_id,
        region=ticket.region,
        firmware=ticket.firmware,
        shard=child.shard,
        linked_at=at,
    )
