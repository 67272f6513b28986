"""One ticket as people read it: `GET /tickets/{id}` and `aftercare tickets show` (through the
API or straight from DynamoDB) print this same document, so a field added here shows in both."""

from __future__ import annotations

from collections.abc import Sequence

from aftercare.domain.ports.records import TicketDetail
from aftercare.domain.pricing import ticket_estimate
from aftercare.models.api import CostEstimateView, TicketView
from aftercare.models.diagnostics import DiagnosticRecord


def ticket_view(detail: TicketDetail, diagnostics: Sequence[DiagnosticRecord]) -> TicketView:
    """The ticket's record with its occurrences, timeline, diagnostics and cost estimate."""
    ticket = detail.ticket.model_dump()
    cost = ticket_estimate(ticket)
    return TicketView(
        **ticket,
        occurrence_history=detail.occurrences,
        timeline=detail.timeline,
        diagnostics=list(diagnostics),
        estimate=CostEstimateView.model_validate(cost.model_dump()),
    )
