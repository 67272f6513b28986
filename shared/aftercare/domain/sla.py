"""Service-level breaches: a ticket answered or resolved after the time its SLA allowed.

Intake gives every ticket two due times from the policy (`sla_response_due`,
`sla_resolution_due`, by priority and customer tier). A change of the ticket record misses one
when it is

- the response: the ticket leaves `open` (an engineer or an automatic diagnosis takes it up, or
  it is resolved or cancelled straight away) after `sla_response_due`; a ticket sent back to
  `open` and taken up late again counts again;
- the resolution: the ticket becomes `resolved` after `sla_resolution_due`.

The function reads the stored ticket images (plain values, ISO 8601 times), so the stream
consumer that sees every change can count breaches without another read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

OPEN = "open"
RESOLVED = "resolved"


class SlaTargetKind(StrEnum):
    RESPONSE = "response"
    RESOLUTION = "resolution"


@dataclass(frozen=True)
class SlaBreach:
    """One missed target of one ticket: when it was due and when it was met."""

    ticket_id: str
    kind: SlaTargetKind
    due: datetime
    met_at: datetime

    @property
    def late_by(self) -> timedelta:
        return self.met_at - self.due


def _time(image: Mapping[str, Any], field: str) -> datetime | None:
    value = image.get(field)
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _breach(
    new: Mapping[str, Any], kind: SlaTargetKind, due_field: str, *met_fields: str
) -> SlaBreach | None:
    due = _time(new, due_field)
    met_at = next(filter(None, (_time(new, field) for field in met_fields)), None)
    if due is None or met_at is None or met_at <= due:
        return None
    return SlaBreach(ticket_id=str(new.get("ticket_id", "")), kind=kind, due=due, met_at=met_at)


def sla_breaches(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[SlaBreach]:
    """The SLA targets the change from ticket image `old` to `new` met late (none, one or both).

    A new ticket (no `old`) or a change that keeps the status meets no target."""
    if not old or not new or old.get("status") == new.get("status"):
        return []
    found = []
    if old.get("status") == OPEN:
        found.append(_breach(new, SlaTargetKind.RESPONSE, "sla_response_due", "updated_at"))
    if new.get("status") == RESOLVED:
        found.append(
            _breach(
                new, SlaTargetKind.RESOLUTION, "sla_resolution_due", "resolved_at", "updated_at"
            )
        )
    return [breach for breach in found if breach is not None]
