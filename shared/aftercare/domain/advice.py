"""Maintenance advice: what the rules say about a device's fresh health, acted on once per
device, rule and period.

An `advise` rule becomes a `maintenance_advice` notification through the notifier (the
customer's channels, language, quiet hours and digest apply as to any message; the notifier's
(id, kind) marker makes it at most once, and the id carries the period). A `ticket` rule
becomes a preventive ticket opened through fault intake, from a report whose `fault_id` is
derived from the rule and period, so intake's dedup makes it at most once too. The health item
remembers the period each rule last fired in (`advised`), so a condition that persists costs
nothing more until the next period.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import TYPE_CHECKING, Protocol

from aftercare.domain.health import DeviceHealth
from aftercare.domain.maintenance import Action, Due, MaintenanceRules, due_for, title_values
from aftercare.domain.ports import IntakeStore
from aftercare.models.payloads import FaultEnvelope, FaultReport, Severity
from aftercare.models.tickets import TicketStatus, TicketSummary

if TYPE_CHECKING:  # the desks' collaborators: imported when a rule fires (NotifyingDesk, below)
    from aftercare.domain.intake import IntakeRules
    from aftercare.domain.notifier import Notifier


class Advisor(Protocol):
    """Tells a customer one advice, at most once per `facts.ticket_id`."""

    def advise(self, facts: TicketSummary, now: datetime) -> str: ...


class MaintenanceDesk(Advisor, Protocol):
    """Where fired rules go: the customer's notifier, and fault intake."""

    def open_preventive(self, envelope: FaultEnvelope) -> str:
        """Open (or find) the preventive ticket this report asks for; returns intake's outcome."""
        ...


@dataclass(frozen=True)
class Acted:
    thing: str
    rule_id: str
    action: Action
    period: str
    result: str


def act_on(
    health: DeviceHealth,
    *,
    region: str | None,
    rules: MaintenanceRules,
    desk: MaintenanceDesk,
    now: datetime,
) -> tuple[DeviceHealth, list[Acted]]:
    """Act on the rules that fire and have not fired this period; the health to save."""
    dues = [d for d in due_for(health, rules, now) if health.advised.get(d.rule_id) != d.period]
    acted: list[Acted] = []
    for due in dues:
        if due.action is Action.ADVISE:
            if health.customer_id is None:
                continue  # nobody to advise: try again when the device has an owner
            result = desk.advise(advice_facts(health, due, rules, region or "", now), now)
        else:
            result = desk.open_preventive(preventive_report(health, due, now))
        acted.append(Acted(health.thing, due.rule_id, due.action, due.period, result))
    if not acted:
        return health, []
    advised = {**health.advised, **{a.rule_id: a.period for a in acted}}
    advised_at = {**health.advised_at, **{a.rule_id: now for a in acted}}
    return health.model_copy(update={"advised": advised, "advised_at": advised_at}), acted


def advice_id(thing: str, due: Due) -> str:
    return f"ADV-{thing}-{due.key}"


def advice_facts(
    health: DeviceHealth, due: Due, rules: MaintenanceRules, region: str, now: datetime
) -> TicketSummary:
    """The advice as the notifier's message facts (its id is the advice's, not a ticket's)."""
    rule = rules.rule(health.model, due.rule_id)
    part = rules.part(due.part) if due.part else None
    values = title_values(due.finding, part)
    return TicketSummary(
        ticket_id=advice_id(health.thing, due),
        customer_id=health.customer_id or "",
        thing=health.thing,
        model=health.model or "",
        fault_code=f"ADVICE-{due.rule_id.upper()}",
        title_en=Template(rule.title_en or "$finding").safe_substitute(values),
        title_zh=Template(rule.title_zh or "$finding").safe_substitute(values),
        category="maintenance",
        region=region,
        severity=Severity.INFO,
        status=TicketStatus.OPEN,
        in_warranty=False,  # wear parts and maintenance are the owner's
        opened_at=now,
        first_seen=now,
    )


def preventive_report(health: DeviceHealth, due: Due, now: datetime) -> FaultEnvelope:
    """The fault report a preventive ticket is opened from: its id is fixed by device, rule and
    period, so however often it is sent, intake opens one ticket."""
    report = FaultReport(
        fault_id=f"pm_{due.key}",
        code=due.code or "PREVENTIVE",
        occurred_at=now,
        firmware=health.firmware,
        readings=_evidence(health),
        message=f"maintenance rule {due.rule_id}: {due.finding}",
    )
    return FaultEnvelope(
        payload_b64=base64.b64encode(report.to_json_bytes()).decode(),
        thing=health.thing,
        received_at=int(now.timestamp() * 1000),
        topic=f"dt/aftercare/{health.thing}/fault",
    )


def _evidence(health: DeviceHealth) -> dict[str, float | int | str | bool]:
    readings: dict[str, float | int | str | bool] = {
        f"temp_mean_{day.isoformat()}": round(mean, 2) for day, mean in health.daily_means()
    }
    if health.temp_ewma is not None:
        readings["temp_ewma_c"] = health.temp_ewma
    return readings


class NotifyingDesk:
    """The `Advisor` of the deployed system: advice through the notifier (the use case every
    customer message goes through)."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def advise(self, facts: TicketSummary, now: datetime) -> str:
        from aftercare.domain.notifications import EventKind

        return self.notifier.notify(EventKind.MAINTENANCE_ADVICE, facts, now).result


class ServiceDesk(NotifyingDesk):
    """The `MaintenanceDesk` of the telemetry function: advice through the notifier, preventive
    tickets through fault intake (the same use cases device faults and ticket events use)."""

    def __init__(self, notifier: Notifier, intake_store: IntakeStore, intake: IntakeRules) -> None:
        super().__init__(notifier)
        self.intake_store = intake_store
        self.intake = intake

    def open_preventive(self, envelope: FaultEnvelope) -> str:
        from aftercare.domain.intake import intake_fault

        outcome = intake_fault(envelope, self.intake_store, self.intake)
        if outcome.reason is not None:
            return f"rejected:{outcome.reason.value}"
        return f"{outcome.kind.value}:{outcome.ticket_id}"
