"""SLA escalation ports: the due trackers and their conditional advance, and the duty pager."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aftercare.domain.escalation import EscalationPlan
    from aftercare.domain.ports.records import EscalationTracker
    from aftercare.domain.tickets import Ticket


class EscalationStore(Protocol):
    def due(self, now: datetime, limit: int) -> list[EscalationTracker]:
        """Trackers whose next step is due by `now` (every bucket of the sparse index)."""
        ...

    def ticket(self, ticket_id: str) -> Ticket | None: ...

    def apply(self, plan: EscalationPlan, tracker: EscalationTracker) -> bool:
        """Advance (or remove) the tracker if it still holds `plan.seen_index`, with the
        ticket's flags (version-guarded) and timeline entries, in one write; False when a
        condition failed (someone else acted, or the ticket moved: look again later)."""
        ...


class DutyPager(Protocol):
    def page(self, message: str) -> None:
        """Tell the duty manager (OpsAlertsTopic in AWS)."""
        ...
