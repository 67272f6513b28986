"""A complete ticket for tests that need one without running intake."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aftercare.domain.tickets import Ticket


def a_ticket(at: datetime, ticket_id: str = "T-1", **overrides: Any) -> Ticket:
    """By default a fan stall on customer c-1's AC-HP (in warranty, open), opened at `at`;
    `overrides` are validated like a stored item (strings for enums and times are fine)."""
    base: dict[str, Any] = {
        "ticket_id": ticket_id,
        "customer_id": "c-1",
        "customer_tier": "standard",
        "thing": "ac-hp-0001",
        "serial": "ACHP0001",
        "model": "AC-HP",
        "fault_code": "FAN-STALL",
        "title_en": "Cooling fan stalled",
        "title_zh": "散热风扇停转",
        "category": "thermal",
        "region": "eu-west",
        "unclassified": False,
        "severity": "major",
        "priority": "P3",
        "status": "open",
        "in_warranty": True,
        "opened_at": at,
        "updated_at": at,
        "first_seen": at,
        "last_seen": at,
        "occurrences": 1,
        "firmware": "1.0.0",
        "sla_response_due": at + timedelta(hours=4),
        "sla_resolution_due": at + timedelta(hours=48),
        "catalog_version": "test",
        "policy_version": "test",
        "opened_by_fault": f"fault-{ticket_id}",
    }
    return Ticket.model_validate(base | overrides)
