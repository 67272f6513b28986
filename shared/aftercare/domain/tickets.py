"""Service tickets: the record, its occurrences, its audit timeline and its state machine.

States and allowed transitions (anything else is an `InvalidTransition`):

    open            -> diagnosing, awaiting_parts, scheduled, resolved, cancelled
    diagnosing      -> open, awaiting_parts, scheduled, resolved, cancelled
    awaiting_parts  -> scheduled, resolved, cancelled
    scheduled       -> in_repair, awaiting_parts, resolved, cancelled, open
    in_repair       -> resolved, awaiting_parts, open
    resolved        -> closed
    closed, cancelled: terminal

A ticket is *active* (it holds the device + fault code's open-fault lock, so new reports of the
same code correlate into it) in every state before `resolved`/`cancelled`.
`scheduled`/`in_repair` -> `open` is a visit that could not fix it (the engineer could not
complete, or the device still reports the fault): the ticket goes back to dispatch.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aftercare.domain.parts import LineChange, close_out_lines
from aftercare.models.tickets import (
    Resolution,
    TicketFlag,
    TicketRecord,
    TicketStatus,
    TimelineEntry,
)
from aftercare.models.visits import VisitRecord

S = TicketStatus
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.OPEN: frozenset({S.DIAGNOSING, S.AWAITING_PARTS, S.SCHEDULED, S.RESOLVED, S.CANCELLED}),
    S.DIAGNOSING: frozenset({S.OPEN, S.AWAITING_PARTS, S.SCHEDULED, S.RESOLVED, S.CANCELLED}),
    S.AWAITING_PARTS: frozenset({S.SCHEDULED, S.RESOLVED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.IN_REPAIR, S.AWAITING_PARTS, S.RESOLVED, S.CANCELLED, S.OPEN}),
    S.IN_REPAIR: frozenset({S.RESOLVED, S.AWAITING_PARTS, S.OPEN}),
    S.RESOLVED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}
ACTIVE_STATES = frozenset({S.OPEN, S.DIAGNOSING, S.AWAITING_PARTS, S.SCHEDULED, S.IN_REPAIR})


class InvalidTransition(ValueError):
    """A status change the state machine does not allow."""

    def __init__(self, current: TicketStatus, target: TicketStatus) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (terminal)"
        super().__init__(f"cannot move a ticket from {current} to {target}; allowed: {allowed}")
        self.current = current
        self.target = target


def check_transition(current: TicketStatus, target: TicketStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(current, target)


def ticket_id_for(thing: str, fault_id: str) -> str:
    """Deterministic id from the fault that opened the ticket: concurrent duplicates agree."""
    digest = hashlib.sha256(f"{thing}|{fault_id}".encode()).digest()
    return "T-" + base64.b32encode(digest).decode()[:12]


class Ticket(TicketRecord):
    """The ticket record (one item); occurrences and timeline are stored beside it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATES

    @property
    def needs_onsite_dispatch(self) -> bool:
        return TicketFlag.NEEDS_ONSITE_DISPATCH in self.flags


class StatusChange(BaseModel):
    """A validated, ready-to-apply status change of one ticket."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket: Ticket
    target: TicketStatus
    entry: TimelineEntry
    releases_lock: bool
    records_resolution: bool
    resolution: Resolution | None = None
    part_changes: list[LineChange] = Field(default_factory=list)
    flags: list[TicketFlag] | None = None  # replaces the ticket's flags when given
    dispatch_reason: str | None = None  # set with `flags` (why it needs another visit)
    visit: VisitRecord | None = None  # the visit record written with the change


def opened_key(opened_at: str, ticket_id: str) -> str:
    """The index sort key of a ticket (`opened_at` as stored: its JSON rendering), by which
    listings page (`aftercare.domain.paging`)."""
    return f"{opened_at}#{ticket_id}"


def resolution_for(
    ticket: Ticket, target: TicketStatus, asked: Resolution | None
) -> Resolution | None:
    """A resolution is on-site when the repair was under way, unless the caller says otherwise."""
    if target is not TicketStatus.RESOLVED:
        return None
    if asked is not None:
        return asked
    return Resolution.ON_SITE if ticket.status is TicketStatus.IN_REPAIR else Resolution.REMOTE


def plan_status_change(
    ticket: Ticket,
    target: TicketStatus,
    *,
    actor: str,
    reason: str,
    now: datetime,
    resolution: Resolution | None = None,
) -> StatusChange:
    """Validate a transition and describe everything that must change with it."""
    check_transition(ticket.status, target)
    resolved_how = resolution_for(ticket, target, resolution)
    detail: dict[str, Any] = {"from": ticket.status.value, "to": target.value, "reason": reason}
    if resolved_how is not None:
        detail["resolution"] = resolved_how.value
    leaves_active = ticket.active and target not in ACTIVE_STATES
    part_changes: list[LineChange] = []
    if leaves_active:
        part_changes = close_out_lines(ticket.parts, consume=resolved_how is Resolution.ON_SITE)
        detail["parts"] = [
            {"sku": c.line.sku, "qty": c.line.qty, "from": c.line.status.value, "to": c.to.value}
            for c in part_changes
        ]
    entry = TimelineEntry(at=now, kind="status_changed", actor=actor, detail=detail)
    return StatusChange(
        ticket=ticket,
        target=target,
        entry=entry,
        releases_lock=leaves_active,
        records_resolution=target is TicketStatus.RESOLVED,
        resolution=resolved_how,
        part_changes=part_changes,
    )
