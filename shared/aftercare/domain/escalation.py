"""SLA escalation: steps at shares of the response and resolution deadlines, acted on once.

Every ticket gets an escalation tracker when it opens (stored on the ticket's own record,
written with it at intake): the index of its next step in the ticket's schedule and when that
step is due. Trackers sit in a sparse index (`by_escalation`: bucket, epoch second), which the
`EscalationSweeper` reads on a schedule; a ticket that is resolved or cancelled drops out of it
with the same write. For each due tracker the sweeper reads the ticket and plans
(`plan_escalation`, pure):

- steps made stale by a status change are skipped: a response step once the ticket has left
  `open`, every step once the ticket is resolved or cancelled (the tracker is then removed);
- the other due steps act: `notify_duty_manager` (a page), `redispatch_with_partners` (flags
  `needs_onsite_dispatch` + `partners_allowed`, with the reason, and sets `dispatch_state` to
  `wanted` so the Dispatcher runs again whatever dispatch had decided before: a ticket left
  waiting for the customer's choice, for a candidate or for parts, one whose visit was
  cancelled or could not complete, or one booked with a visit that misses the SLA (see
  `redispatch.dispatch`); a ticket under repair is not re-dispatched, and its entry
  says so), `mark_breached` (flag `sla_breached`); each leaves a `sla_escalated` timeline
  entry;
- the tracker advances past them, in the same write as the ticket's change, on the
  condition that it still holds the index read: a second sweeper (or a retry) that read the
  same index fails that condition and does nothing, and so does one racing a resolution
  (which removed the tracker). So each step acts exactly once; a page goes out after the
  write committed (at most once: a crash in between loses the page, never the record of the
  escalation).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from functools import cache

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.data import DATA_FOLDER, load
from aftercare.domain.ports.dispatch import DispatchState
from aftercare.domain.ports.escalation import DutyPager, EscalationStore
from aftercare.domain.ports.records import EscalationTracker
from aftercare.domain.sla import SlaTargetKind
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import (
    DISPATCHABLE_STATES,
    TicketFlag,
    TicketStatus,
    TimelineEntry,
)

ESCALATION_ACTOR = "sla-escalation"
BUCKETS = 8  # trackers spread over this many index partitions (hot-partition free at scale)


class EscalationAction(StrEnum):
    NOTIFY_DUTY_MANAGER = "notify_duty_manager"
    REDISPATCH_WITH_PARTNERS = "redispatch_with_partners"
    MARK_BREACHED = "mark_breached"


class EscalationStep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    target: SlaTargetKind
    at: float = Field(gt=0, le=2)
    action: EscalationAction

    @property
    def name(self) -> str:
        return f"{self.target.value}@{round(self.at * 100)}%"


class EscalationPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    version: str
    steps: list[EscalationStep]


@cache
def load_escalation() -> EscalationPolicy:
    """The escalation steps shipped with this build (`data/escalation.yaml`)."""
    data = load(DATA_FOLDER, "escalation.yaml")
    data["version"] = str(data["version"])
    return EscalationPolicy.model_validate(data)


class ScheduledStep(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    due: AwareDatetime
    step: EscalationStep


def schedule(ticket: Ticket, policy: EscalationPolicy) -> list[ScheduledStep]:
    """The ticket's steps in the order they fall due."""
    deadlines = {
        SlaTargetKind.RESPONSE: ticket.sla_response_due,
        SlaTargetKind.RESOLUTION: ticket.sla_resolution_due,
    }
    steps = [
        ScheduledStep(
            due=ticket.opened_at + (deadlines[s.target] - ticket.opened_at) * s.at, step=s
        )
        for s in policy.steps
    ]
    return sorted(steps, key=lambda s: (s.due, s.step.target.value))


def bucket_of(ticket_id: str) -> str:
    digest = hashlib.sha256(ticket_id.encode()).digest()
    return f"ESC#{digest[0] % BUCKETS}"


def first_tracker(ticket: Ticket, policy: EscalationPolicy) -> EscalationTracker | None:
    steps = schedule(ticket, policy)
    if not steps or not ticket.active:
        return None
    return EscalationTracker(
        ticket_id=ticket.ticket_id,
        index=0,
        next_at=steps[0].due,
        bucket=bucket_of(ticket.ticket_id),
    )


def rescheduled_tracker(
    before: Ticket, after: Ticket, policy: EscalationPolicy, now: datetime
) -> EscalationTracker | None:
    """The schedule moved to a reclassified ticket's SLA (`after`; same opening time).

    The steps the old schedule had reached by `now` (due at or before it: the sweeper acted on
    them, or is about to) count as done; the tracker points at the first step of the new
    schedule that is not, even when it is already due: a step overdue under the new SLA is
    acted on at the next sweep. (Only if the new SLA swaps the order of a response and a
    resolution step could a done step fall after that one and be acted on again.)"""
    steps = schedule(after, policy)
    if not steps or not after.active:
        return None
    done = {s.step.name for s in schedule(before, policy) if s.due <= now}
    index = next((i for i, s in enumerate(steps) if s.step.name not in done), len(steps))
    if index == len(steps):
        return None
    return EscalationTracker(
        ticket_id=after.ticket_id,
        index=index,
        next_at=steps[index].due,
        bucket=bucket_of(after.ticket_id),
    )


class EscalationPlan(BaseModel):
    """What one sweep does to one ticket, applied in one transaction (then the pages)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket: Ticket
    seen_index: int
    next: EscalationTracker | None  # None: the schedule is done (or stale): remove it
    acted: list[EscalationStep] = Field(default_factory=list)
    skipped: list[EscalationStep] = Field(default_factory=list)
    entries: list[TimelineEntry] = Field(default_factory=list)
    flags: list[TicketFlag] | None = None  # the ticket's flags after, when they change
    dispatch_reason: str | None = None
    redispatch: bool = False  # set `dispatch_state` = wanted: the Dispatcher runs again
    pages: list[str] = Field(default_factory=list)

    @property
    def changes_ticket(self) -> bool:
        return bool(self.entries)


def _stale(step: EscalationStep, ticket: Ticket) -> bool:
    if not ticket.active:
        return True
    return step.target is SlaTargetKind.RESPONSE and ticket.status is not TicketStatus.OPEN


def plan_escalation(
    ticket: Ticket, tracker: EscalationTracker, policy: EscalationPolicy, now: datetime
) -> EscalationPlan:
    """Act on the tracker's steps that are due by `now` and not made stale, then advance."""
    steps = schedule(ticket, policy)
    index = tracker.index
    acted: list[EscalationStep] = []
    skipped: list[EscalationStep] = []
    while index < len(steps) and steps[index].due <= now:
        step = steps[index].step
        (skipped if _stale(step, ticket) else acted).append(step)
        index += 1
    nxt = None
    if ticket.active and index < len(steps):
        nxt = tracker.model_copy(update={"index": index, "next_at": steps[index].due})
    return _with_actions(
        EscalationPlan(
            ticket=ticket, seen_index=tracker.index, next=nxt, acted=acted, skipped=skipped
        ),
        now,
    )


REDISPATCHABLE = DISPATCHABLE_STATES | {TicketStatus.SCHEDULED}


def _with_actions(plan: EscalationPlan, now: datetime) -> EscalationPlan:
    ticket = plan.ticket
    flags = list(ticket.flags)
    entries, pages = [], []
    reason = None
    redispatch = False
    for step in plan.acted:
        action = step.action
        detail: dict[str, object] = {
            "step": step.name,
            "action": action.value,
            "status": ticket.status.value,
        }
        if action is EscalationAction.REDISPATCH_WITH_PARTNERS:
            flags += [
                f
                for f in (TicketFlag.NEEDS_ONSITE_DISPATCH, TicketFlag.PARTNERS_ALLOWED)
                if f not in flags
            ]
            reason = f"SLA escalation {step.name}: dispatch again, partners allowed"
            redispatch = redispatch or ticket.status in REDISPATCHABLE
            detail |= {
                "dispatch_state": ticket.dispatch_state,
                "redispatch": ticket.status in REDISPATCHABLE,
            }
        elif action is EscalationAction.MARK_BREACHED and TicketFlag.SLA_BREACHED not in flags:
            flags.append(TicketFlag.SLA_BREACHED)
        elif action is EscalationAction.NOTIFY_DUTY_MANAGER:
            pages.append(
                f"SLA escalation {step.name}: ticket {ticket.ticket_id} ({ticket.priority}, "
                f"{ticket.fault_code} on {ticket.thing}) is {ticket.status}; response due "
                f"{ticket.sla_response_due.isoformat()}, resolution due "
                f"{ticket.sla_resolution_due.isoformat()}"
            )
        entries.append(
            TimelineEntry(
                at=now,
                kind="sla_escalated",
                actor=ESCALATION_ACTOR,
                detail=detail,
            )
        )
    changed = flags != list(ticket.flags) or redispatch
    return plan.model_copy(
        update={
            "entries": entries,
            "pages": pages,
            "flags": flags if changed else None,
            "dispatch_reason": reason or ticket.dispatch_reason,
            "redispatch": redispatch,
        }
    )


WANTED = DispatchState.WANTED.value  # what a redispatch step writes as the dispatch state


def sweep_escalations(
    store: EscalationStore,
    pager: DutyPager,
    policy: EscalationPolicy,
    now: datetime,
    limit: int = 200,
) -> list[EscalationPlan]:
    """Every due tracker: plan, apply (conditional on the index read), then page."""
    applied = []
    for tracker in store.due(now, limit):
        ticket = store.ticket(tracker.ticket_id)
        if ticket is None:
            continue
        plan = plan_escalation(ticket, tracker, policy, now)
        if not store.apply(plan, tracker):
            continue  # another sweep acted, or the ticket moved: the next sweep looks again
        for page in plan.pages:
            pager.page(page)
        applied.append(plan)
    return applied
