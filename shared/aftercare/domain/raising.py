"""Tickets people raise: a customer in the app or on the web, or a support agent taking a call,
a chat, an e-mail or a walk-in for a customer. One pipeline with the device's own reports.

A person's report is turned into the same `FaultReport` a device sends and applied by intake's
`apply_report` with its origin (channel, who raised it), so correlation, repeats, priority and
SLA, parts reservation and the stream consumers (notifier, auto-diagnostics) are the device
path's, not a copy. What is the person's own:

- **who may raise what**: a customer only on devices they own (anything else is not found) and
  only through the customer channels of the channel policy; agents for any device, through the
  agent channels;
- **symptom**: a catalog code (`GET /symptoms`) or free text. Text that looks like a code but is
  not in the catalog is refused (a typo must not become a ticket nobody can route); other text
  opens an *unclassified* ticket (code `TRIAGE-…`, its own, so two different free-text problems
  never correlate) for an agent to classify;
- **Idempotency-Key**: the key (per caller) derives the report's fault id, so every retry of one
  request names the same ticket, and a `RequestMark` with the request's fingerprint is written in
  the same transaction as the ticket or occurrence, only if new. A retry with the same body gets
  the first answer (`duplicate_request`, same ticket); the same key with another body is refused.
  Concurrent retries race on conditional writes, never on a read-then-write.
- **callback**: when the channel policy's treatment of the customer's tier asks for one on this
  channel (VIP phone/chat), a callback task with its timeline entry (idempotent by ticket).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from aftercare.domain.access import Caller
from aftercare.domain.channels import ChannelPolicy
from aftercare.domain.intake import IntakeOutcome, IntakeRules, OutcomeKind, apply_report
from aftercare.domain.ports import DeviceDirectory, RaisedTickets, RequestMark, TaskStore
from aftercare.domain.rules import FaultCatalog
from aftercare.domain.support import DeviceNotFound
from aftercare.domain.tickets import Ticket
from aftercare.models.payloads import FaultReport
from aftercare.models.raised_api import Symptom
from aftercare.models.tasks import Task
from aftercare.models.tickets import Channel, Origin, TimelineEntry

CODE_LIKE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,47}$")
TRIAGE_PREFIX = "TRIAGE-"
CALLBACK = "callback"


class RaiseOutcome(StrEnum):
    OPENED = "opened"
    ALREADY_BEING_HANDLED = "already_being_handled"
    DUPLICATE_REQUEST = "duplicate_request"


class ChannelNotAllowed(ValueError):
    """The caller may not raise a ticket through this channel (422)."""


class UnknownSymptom(ValueError):
    """A symptom code that is not in the catalog (422)."""


class CustomerMismatch(ValueError):
    """An agent named a customer who does not own the device (422)."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used with a different request (409)."""


class RaiseRequest(BaseModel):
    """What a person reports (the API body, validated already)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    thing: str
    symptom: str
    description: str | None = None
    channel: Channel
    preferred_contact: str | None = None
    for_customer: str | None = None

    def fingerprint(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


class Raised(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    outcome: RaiseOutcome
    ticket: Ticket
    callback: Task | None = None


@dataclass(frozen=True)
class RaiseDeps:
    """What raising needs: the ticket store, the registry, tasks and the rules (data)."""

    tickets: RaisedTickets
    devices: DeviceDirectory
    tasks: TaskStore
    rules: IntakeRules
    channels: ChannelPolicy


def symptom_code(symptom: str, rules: IntakeRules, fault_id: str) -> str:
    """The fault code a symptom stands for: a catalog code as it is, free text a triage code of
    its own. Raises UnknownSymptom for code-like text the catalog does not know."""
    text = symptom.strip()
    entry = rules.catalog.lookup(text)
    if entry is not None and not entry.preventive:  # preventive codes are the cloud's to raise
        return text
    if CODE_LIKE.match(text):
        raise UnknownSymptom(f"{text!r} is not a symptom code of the catalog (GET /symptoms)")
    digest = hashlib.sha256(fault_id.encode()).hexdigest()[:12].upper()
    return f"{TRIAGE_PREFIX}{digest}"


def fault_id_for(scope: str, key: str | None) -> str:
    """A request's fault id: derived from the caller's Idempotency-Key (every retry names the
    same ticket), or new for a request without one."""
    if key is None:
        return f"req-{uuid.uuid4().hex}"
    return "req-" + hashlib.sha256(f"{scope}|{key}".encode()).hexdigest()[:40]


def _origin_and_scope(
    caller: Caller, request: RaiseRequest, owner: str, channels: ChannelPolicy
) -> tuple[Origin, str]:
    agent = caller.staff
    if not channels.allows(request.channel, agent=agent):
        allowed = channels.agent_channels if agent else channels.customer_channels
        who = "an agent" if agent else "a customer"
        raise ChannelNotAllowed(
            f"{who} may not raise a ticket through {request.channel.value!r}; "
            f"allowed: {', '.join(c.value for c in allowed)}"
        )
    if agent and request.for_customer is not None and request.for_customer != owner:
        raise CustomerMismatch(f"{request.thing} does not belong to {request.for_customer}")
    raised_by = f"agent:{caller.username}" if agent else f"customer:{caller.customer_id}"
    origin = Origin(
        channel=request.channel,
        raised_by=raised_by,
        preferred_contact=request.preferred_contact,
    )
    return origin, f"user:{caller.username}" if agent else f"customer:{caller.customer_id}"


def _owned_device(caller: Caller, thing: str, devices: DeviceDirectory) -> dict[str, Any]:
    caller.require_reader()
    device = devices.get(thing)
    if device is None or not caller.may_see(device.get("customer_id")):
        raise DeviceNotFound(thing)
    return device


def raise_ticket(
    caller: Caller,
    request: RaiseRequest,
    *,
    key: str | None,
    deps: RaiseDeps,
    now: datetime,
) -> Raised:
    """Open a ticket for the device, or add the report to its active ticket for that code."""
    device = _owned_device(caller, request.thing, deps.devices)
    origin, scope = _origin_and_scope(
        caller, request, str(device.get("customer_id")), deps.channels
    )
    mark = None
    if key is not None:
        mark = RequestMark(scope=scope, key=key, fingerprint=request.fingerprint())
        earlier = deps.tickets.load_request(scope, key)
        if earlier is not None:
            return _replay(earlier, mark, deps)
    fault_id = fault_id_for(scope, key)
    code = symptom_code(request.symptom, deps.rules, fault_id)
    free_text = request.symptom.strip() if code.startswith(TRIAGE_PREFIX) else None
    report = FaultReport(
        fault_id=fault_id,
        code=code,
        occurred_at=now,
        firmware=str(device.get("firmware") or "unknown"),
        message="\n\n".join(t for t in (free_text, request.description) if t) or None,
    )
    outcome = apply_report(
        report, request.thing, deps.tickets, deps.rules, now,
        origin=origin, request=mark, follow_up=lambda ticket: callback_for(ticket, deps.channels),
    )  # fmt: skip
    return _answer(outcome, mark, deps)


def _answer(outcome: IntakeOutcome, mark: RequestMark | None, deps: RaiseDeps) -> Raised:
    if outcome.kind is OutcomeKind.REJECTED or outcome.ticket_id is None:
        raise DeviceNotFound(outcome.thing)  # removed from the registry meanwhile
    if outcome.kind is OutcomeKind.DUPLICATE:
        # Another request with this key won the race: answer as it did, or refuse the key.
        earlier = deps.tickets.load_request(mark.scope, mark.key) if mark else None
        if earlier is not None and mark is not None:
            return _replay(earlier, mark, deps)
        ticket = deps.tickets.get_ticket(outcome.ticket_id).ticket
        return Raised(outcome=RaiseOutcome.DUPLICATE_REQUEST, ticket=ticket)
    ticket = deps.tickets.get_ticket(outcome.ticket_id).ticket
    if outcome.kind is OutcomeKind.CORRELATED:
        return Raised(outcome=RaiseOutcome.ALREADY_BEING_HANDLED, ticket=ticket)
    callback = callback_task(ticket, deps.channels)
    return Raised(outcome=RaiseOutcome.OPENED, ticket=ticket, callback=callback)


def _replay(earlier: RequestMark, mark: RequestMark, deps: RaiseDeps) -> Raised:
    if earlier.fingerprint != mark.fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {mark.key!r} was used for a different request "
            f"(ticket {earlier.ticket_id}); use a new key for a new request"
        )
    ticket = deps.tickets.get_ticket(earlier.ticket_id).ticket
    callback = callback_task(ticket, deps.channels) if earlier.outcome == "opened" else None
    return Raised(outcome=RaiseOutcome.DUPLICATE_REQUEST, ticket=ticket, callback=callback)


def symptom_list(catalog: FaultCatalog, lang: str, model: str | None = None) -> list[Symptom]:
    """The catalog's codes as customers choose from them, named in `lang` (en or zh)."""
    return [
        Symptom(
            code=entry.code,
            name=entry.title_zh if lang.startswith("zh") else entry.title_en,
            category=entry.category,
            severity=entry.severity,
            models=list(entry.models),
        )
        for entry in sorted(catalog.codes.values(), key=lambda e: (e.category, e.code))
        if (model is None or model in entry.models) and not entry.preventive
    ]


def callback_task(ticket: Ticket, channels: ChannelPolicy) -> Task | None:
    """The callback the channel policy asks for on this ticket, if any (VIP phone/chat)."""
    treatment = channels.treatment(ticket.customer_tier.value)
    if not treatment.wants_callback(ticket.channel):
        return None
    return Task(
        task_id=f"{ticket.ticket_id}.{CALLBACK}",
        kind=CALLBACK,
        ticket_id=ticket.ticket_id,
        customer_id=ticket.customer_id,
        thing=ticket.thing,
        channel=ticket.channel,
        preferred_contact=ticket.preferred_contact,
        due_at=ticket.opened_at + treatment.callback_within,
        created_at=ticket.opened_at,
    )


def callback_for(ticket: Ticket, channels: ChannelPolicy) -> tuple[Task, TimelineEntry] | None:
    """The callback task to open with a new ticket, and its timeline entry (written in the
    ticket's transaction: there is no ticket without its callback)."""
    task = callback_task(ticket, channels)
    if task is None:
        return None
    entry = TimelineEntry(
        at=ticket.opened_at,
        kind="callback_requested",
        actor="channel-policy",
        detail={
            "task_id": task.task_id,
            "due_at": task.due_at.isoformat(),
            "channel": task.channel.value,
            "customer_tier": ticket.customer_tier.value,
            "channel_policy_version": channels.version,
        },
    )
    return task, entry
