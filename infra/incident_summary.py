"""Fleet incident figures for the demo summary, from the stack's own IncidentsTable."""

from __future__ import annotations

from typing import Any

from aftercare.adapters.incidents import DynamoIncidentStore
from aftercare.domain.incidents import load_incident_policy

from infra.target import Target


def incident_summary(target: Target) -> list[dict[str, Any]]:
    """Each incident: what it grouped, and what it saved (diagnostics, reservations, messages)."""
    policy = load_incident_policy()
    store = DynamoIncidentStore(
        incidents_table=target.resource("IncidentsTable"),
        tickets_table=target.resource("TicketsTable"),
        policy=policy,
        ddb=target.client("dynamodb"),
    )
    rows = []
    for incident in store.list_incidents():
        stats = store.incident_stats(incident.incident_id, policy.detection.shards)
        rows.append(
            {
                "incident_id": incident.incident_id,
                "fault_code": incident.fault_code,
                "category": incident.category,
                "codes": incident.covered_codes,
                "model": incident.model,
                "status": incident.status.value,
                "children": stats.children,
                "linked_before_threshold": stats.linked_before,
                "firmware_versions": stats.firmware_versions,
                "regions": stats.regions,
                "diagnostics_sent": stats.diagnostics_sent,
                "diagnostics_skipped": stats.diagnostics_skipped,
                "reservations_held": stats.reservations_held,
                "reservations_avoided": stats.reservations_avoided,
                "backorder_for_purchasing": stats.backorder,
                "messages_sent": stats.messages_sent,
                "messages_saved": stats.messages_saved,
                "trend_per_minute": stats.trend,
            }
        )
    return rows
