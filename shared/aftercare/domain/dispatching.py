"""Dispatching one ticket (the Dispatcher function, the API): find the candidates, then book
the earliest feasible visit where the policy says so (P1/VIP), or leave the choice to the
customer; record the decision on the ticket (`dispatch_state` + a timeline entry) in one write.

Booking goes through the `Calendar` port, whose write fails with `SlotTaken` when anyone else
took that time first (a customer, a dispatcher, another Dispatcher): the next candidate is
tried. A manual assignment (`assign`) uses the same write: there is no bypass.

SLA escalation (`redispatch_with_partners`) sets `dispatch_state` = wanted whatever dispatch
had decided: a ticket waiting for the customer's choice, for a candidate or for parts is
dispatched again here with partners allowed and, per `auto_book.escalated`, booked; a
scheduled ticket is handled by `aftercare.domain.redispatch` (the Dispatcher's entry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from aftercare.domain.calendar import scheduled_visit
from aftercare.domain.channels import ChannelPolicy
from aftercare.domain.dispatch import (
    Candidate,
    CandidateSearch,
    DispatchJob,
    EngineerContext,
    FirstTimeFix,
    auto_books,
    dispatch_trigger,
    find_candidates,
    job_for,
    local_day,
    static_rule_failure,
)
from aftercare.domain.dispatch_policy import DispatchPolicy
from aftercare.domain.ports.dispatch import (
    CustomerPreferences,
    DispatchMark,
    DispatchMarks,
    DispatchState,
    FixHistory,
    LeadTimes,
)
from aftercare.domain.ports.errors import ConcurrentUpdate
from aftercare.domain.ports.field import (
    BookingConflict,
    BookingReads,
    Calendar,
    EngineerDirectory,
    SlotTaken,
)
from aftercare.domain.ports.tickets import TicketLookup
from aftercare.domain.pricing import PriceTable, RepairFacts, estimate
from aftercare.domain.rules import FaultCatalog
from aftercare.domain.tickets import Ticket
from aftercare.domain.visit_moves import booked_move
from aftercare.models.field import (
    LIVE_BOOKING_STATUSES,
    Booking,
    BookingSource,
    Engineer,
)
from aftercare.models.parts import LineStatus
from aftercare.models.tickets import TicketStatus, TimelineEntry

MAX_MARK_RETRIES = 3
OFFERED_IN_ENTRY = 3


@dataclass(frozen=True)
class DispatchDeps:
    tickets: TicketLookup
    directory: EngineerDirectory
    bookings: BookingReads
    calendar: Calendar
    marks: DispatchMarks
    lead_times: LeadTimes
    history: FixHistory
    customers: CustomerPreferences
    policy: DispatchPolicy
    catalog: FaultCatalog
    prices: PriceTable
    channels: ChannelPolicy  # each tier's treatment: whether its named engineers are preferred


class DispatchOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    state: DispatchState
    booking: Booking | None = None
    candidates: int = 0
    rejected: dict[str, str] = {}
    slot_taken: int = 0


class EngineerNotEligible(ValueError):
    """A manual assignment to an engineer who fails a hard rule (skill, region, partner)."""


class EngineerUnknown(LookupError):
    pass


class InvalidStart(ValueError):
    """A manual assignment's start off the calendar's quarter-hour cells."""


class NotDispatchable(ValueError):
    """The ticket is not in a state a visit can be booked for (resolved, under repair...)."""


def contexts_for(job: DispatchJob, deps: DispatchDeps, now: datetime) -> list[EngineerContext]:
    """The region's engineers (and partners) with their live bookings over the search days
    and, for those passing the static rules, their first-time-fix record on the job's model and
    code (one read each)."""
    partners = {p.partner_id: p for p in deps.directory.list_partners()}
    engineers = deps.directory.list_engineers(job.region)
    last = min(job.sla_due, now + timedelta(days=deps.policy.visit.horizon_days))
    start = max(now, job.parts_ready_at)
    contexts = [
        EngineerContext(engineer=e, partner=partners.get(e.partner) if e.partner else None)
        for e in engineers
    ]
    eligible = [c for c in contexts if static_rule_failure(c, job, deps.policy) is None]
    for_engineer = {
        c.engineer.engineer_id: _bookings(deps.bookings, c.engineer, start, last) for c in eligible
    }
    partner_days = _partner_visits(for_engineer, eligible)
    records = {
        c.engineer.engineer_id: FirstTimeFix.of(
            deps.history.visit_outcomes(c.engineer.engineer_id, job.model, job.fault_code)
        )
        for c in eligible
    }
    return [
        c.model_copy(
            update={
                "bookings": tuple(for_engineer.get(c.engineer.engineer_id, ())),
                "partner_visits": partner_days.get(c.engineer.partner or "", {}),
                "ftf": records.get(c.engineer.engineer_id, FirstTimeFix()),
            }
        )
        for c in contexts
    ]


def _bookings(
    reads: BookingReads, engineer: Engineer, start: datetime, last: datetime
) -> list[Booking]:
    if last < start:
        return []
    first_day, last_day = local_day(start, engineer.time_zone), local_day(last, engineer.time_zone)
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    live = (b for d in days for b in reads.bookings_for_engineer(engineer.engineer_id, d))
    return [b for b in live if b.status in LIVE_BOOKING_STATUSES]


def _partner_visits(
    by_engineer: Mapping[str, list[Booking]], contexts: Iterable[EngineerContext]
) -> dict[str, dict[date, int]]:
    counts: dict[str, dict[date, int]] = {}
    for ctx in contexts:
        partner = ctx.engineer.partner
        if partner is None:
            continue
        per_day = counts.setdefault(partner, {})
        for b in by_engineer.get(ctx.engineer.engineer_id, []):
            day = local_day(b.start, ctx.engineer.time_zone)
            per_day[day] = per_day.get(day, 0) + 1
    return counts


def booking_id_for(ticket_id: str, engineer_id: str, start: datetime) -> str:
    """Deterministic per ticket, engineer and start: a retried write is the same booking."""
    who = hashlib.sha256(engineer_id.encode()).hexdigest()[:8]
    return f"B-{ticket_id.removeprefix('T-')}-{start.astimezone(UTC):%Y%m%d%H%M}-{who}"


def new_booking(
    ticket: Ticket,
    candidate: Candidate,
    *,
    source: BookingSource,
    actor: str,
    now: datetime,
) -> Booking:
    return scheduled_visit(
        ticket,
        booking_id=booking_id_for(ticket.ticket_id, candidate.engineer_id, candidate.start),
        engineer=candidate,
        start=candidate.start,
        end=candidate.end,
        source=source,
        actor=actor,
        now=now,
    )


def cost_detail(ticket: Ticket, prices: PriceTable) -> dict[str, Any]:
    facts = RepairFacts.model_validate(
        {**ticket.model_dump(mode="json"), "flags": [*ticket.flags, "needs_onsite_dispatch"]}
    )
    return estimate(facts, prices).model_dump(mode="json")


def booked_entry(
    ticket: Ticket,
    booking: Booking,
    deps: DispatchDeps,
    *,
    actor: str,
    now: datetime,
    slot_taken: int = 0,
) -> TimelineEntry:
    return TimelineEntry(
        at=now,
        kind="dispatch_booked",
        actor=actor,
        detail={
            "booking_id": booking.booking_id,
            "engineer_id": booking.engineer_id,
            "partner": booking.partner,
            "start": booking.start.isoformat(),
            "end": booking.end.isoformat(),
            "source": booking.source.value,
            "estimate": cost_detail(ticket, deps.prices),
            "slot_taken": slot_taken,
        },
    )


def mark(
    deps: DispatchDeps,
    ticket: Ticket,
    state: DispatchState,
    entry: TimelineEntry,
    *,
    to_status: TicketStatus | None = None,
    flag: bool = False,
    waiting_skus: tuple[str, ...] = (),
) -> None:
    """Record the decision; a ticket that moved on meanwhile is re-read and marked again."""
    current = ticket
    for _ in range(MAX_MARK_RETRIES):
        status = to_status if to_status in _TARGETS.get(current.status, ()) else None
        try:
            deps.marks.mark_dispatch(
                DispatchMark(
                    ticket=current,
                    state=state,
                    entry=entry,
                    to_status=status,
                    flag=flag,
                    waiting_skus=waiting_skus,
                )
            )
            return
        except ConcurrentUpdate:
            current = deps.tickets.get_ticket(ticket.ticket_id).ticket
    raise ConcurrentUpdate(f"{ticket.ticket_id} kept changing while dispatch was recorded")


_TARGETS = {
    TicketStatus.OPEN: (TicketStatus.SCHEDULED,),
    TicketStatus.DIAGNOSING: (TicketStatus.SCHEDULED,),
    TicketStatus.AWAITING_PARTS: (TicketStatus.SCHEDULED,),
}


def book_first(
    ticket: Ticket,
    candidates: Iterable[Candidate],
    deps: DispatchDeps,
    *,
    now: datetime,
    on_taken: Callable[[Candidate], None],
) -> Booking | None:
    """Book the candidates in order until one write succeeds (SlotTaken: the next one). The
    booking, the ticket's move to `scheduled` and its `dispatch_booked` entry are one
    transaction, conditioned on the ticket as read (`ConcurrentUpdate`: re-read, try again).

    `BookingConflict` (the ticket got a live booking meanwhile, e.g. the customer picked a
    slot) goes to the caller: there is nothing left to book."""
    taken = 0
    for candidate in candidates:
        booking = new_booking(
            ticket, candidate, source=BookingSource.AUTO, actor="dispatcher", now=now
        )
        try:
            ticket = _book_with_ticket(ticket, booking, deps, now=now, slot_taken=taken)
        except SlotTaken:
            taken += 1
            on_taken(candidate)
            continue
        return booking
    return None


def _book_with_ticket(
    ticket: Ticket, booking: Booking, deps: DispatchDeps, *, now: datetime, slot_taken: int
) -> Ticket:
    """One booking write carrying the ticket's move; a ticket that moved on is re-read."""
    current = ticket
    for _ in range(MAX_MARK_RETRIES):
        entry = booked_entry(
            current, booking, deps, actor="dispatcher", now=now, slot_taken=slot_taken
        )
        move = booked_move(current, booking, actor="dispatcher", now=now, entry=entry)
        try:
            deps.calendar.book(booking, now, ticket_move=move)
        except ConcurrentUpdate:
            current = deps.tickets.get_ticket(ticket.ticket_id).ticket
            if not current.active:
                raise
            continue
        return current
    raise ConcurrentUpdate(f"{ticket.ticket_id} kept changing while its visit was booked")


def live_booking(deps: DispatchDeps, ticket_id: str) -> Booking | None:
    live = [
        b for b in deps.bookings.bookings_for_ticket(ticket_id) if b.status in LIVE_BOOKING_STATUSES
    ]
    return live[0] if live else None


def job_of(ticket: Ticket, deps: DispatchDeps, now: datetime) -> DispatchJob:
    """The ticket as a visit to place: parts lead times, and the customer's preferred engineers
    when their tier's treatment (`channels.yaml`, `named_engineer_preference`) asks for it (the
    customer record is read for those tiers only: the score term applies to nobody else)."""
    skus = [line.sku for line in ticket.parts]
    treatment = deps.channels.treatment(str(ticket.customer_tier))
    preferred = (
        deps.customers.preferred_engineers(ticket.customer_id)
        if treatment.named_engineer_preference
        else []
    )
    return job_for(
        ticket,
        policy=deps.policy,
        lead_days=deps.lead_times.lead_days(skus),
        now=now,
        preferred_engineers=preferred,
    )


def dispatch_ticket(ticket: Ticket, deps: DispatchDeps, *, now: datetime) -> DispatchOutcome | None:
    """Dispatch one ticket not booked yet; None when it needs no visit (or no longer)."""
    entry_in_catalog = deps.catalog.lookup(ticket.fault_code)
    always = bool(entry_in_catalog and entry_in_catalog.always_onsite)
    if dispatch_trigger(ticket, always) is None:
        return None
    if ticket.dispatch_state == DispatchState.AWAITING_CUSTOMER.value:
        return None  # the customer chooses (e.g. after cancelling): never booked for them
    existing = live_booking(deps, ticket.ticket_id)
    if existing is not None:  # a redelivered record, or the customer booked meanwhile
        return DispatchOutcome(
            ticket_id=ticket.ticket_id, state=DispatchState.BOOKED, booking=existing
        )
    job = job_of(ticket, deps, now)
    search = find_candidates(job, contexts_for(job, deps, now), deps.policy, now)
    if not search.candidates:
        return _no_candidate(ticket, job, search.rejected, deps, now)
    if not auto_books(job, deps.policy):
        return _offer(ticket, search.candidates, search.rejected, deps, now)
    return _auto_book(ticket, search, deps, now)


def _auto_book(
    ticket: Ticket, search: CandidateSearch, deps: DispatchDeps, now: datetime
) -> DispatchOutcome:
    """P1/VIP: the earliest feasible visit of the best candidate that can still be had."""
    taken: list[str] = []
    try:
        booking = book_first(
            ticket, search.candidates, deps, now=now, on_taken=lambda c: taken.append(c.engineer_id)
        )
    except BookingConflict:  # the ticket got its visit meanwhile (one live booking per ticket)
        return DispatchOutcome(
            ticket_id=ticket.ticket_id,
            state=DispatchState.BOOKED,
            booking=live_booking(deps, ticket.ticket_id),
        )
    if booking is None:
        return _offer(ticket, [], search.rejected, deps, now, slot_taken=len(taken))
    return DispatchOutcome(
        ticket_id=ticket.ticket_id,
        state=DispatchState.BOOKED,
        booking=booking,
        candidates=len(search.candidates),
        rejected=search.rejected,
        slot_taken=len(taken),
    )


def _offer(
    ticket: Ticket,
    candidates: list[Candidate],
    rejected: dict[str, str],
    deps: DispatchDeps,
    now: datetime,
    *,
    slot_taken: int = 0,
) -> DispatchOutcome:
    """The customer chooses (GET /tickets/{id}/slots): record that the ticket waits for them."""
    entry = TimelineEntry(
        at=now,
        kind="dispatch_awaiting_customer",
        actor="dispatcher",
        detail={
            "earliest": [
                {"engineer_id": c.engineer_id, "start": c.start.isoformat()}
                for c in candidates[:OFFERED_IN_ENTRY]
            ],
            "slot_taken": slot_taken,
            "estimate": cost_detail(ticket, deps.prices),
        },
    )
    mark(deps, ticket, DispatchState.AWAITING_CUSTOMER, entry)
    return DispatchOutcome(
        ticket_id=ticket.ticket_id,
        state=DispatchState.AWAITING_CUSTOMER,
        candidates=len(candidates),
        rejected=rejected,
        slot_taken=slot_taken,
    )


def _no_candidate(
    ticket: Ticket, job: DispatchJob, rejected: dict[str, str], deps: DispatchDeps, now: datetime
) -> DispatchOutcome:
    """Nobody can go in time: waiting for parts (a backorder past the horizon) or for people."""
    horizon = now + timedelta(days=deps.policy.visit.horizon_days)
    state = (
        DispatchState.AWAITING_PARTS
        if job.parts_ready_at >= min(job.sla_due, horizon)
        else DispatchState.NO_CANDIDATE
    )
    entry = TimelineEntry(
        at=now,
        kind=f"dispatch_{state.value}",
        actor="dispatcher",
        detail={"parts_ready_at": job.parts_ready_at.isoformat(), "rejected": rejected},
    )
    waiting = tuple(
        sorted({line.sku for line in ticket.parts if line.status is LineStatus.BACKORDERED})
    )
    mark(
        deps,
        ticket,
        state,
        entry,
        waiting_skus=waiting if state is DispatchState.AWAITING_PARTS else (),
    )
    return DispatchOutcome(ticket_id=ticket.ticket_id, state=state, rejected=rejected)
