"""Silence: a device that stopped reporting for longer than its model's heartbeat gets one
"device offline" check, at most once per silence.

Every health write puts the device in the sparse due-checks index with `next_check_at` =
last seen + heartbeat; a sweep takes the devices whose time has come, tells the owner (a
`maintenance_advice` through the notifier, its id naming the silence's start, so a repeated
sweep is absorbed by the notifier's marker) and then marks the health offline, which takes it
out of the index. A report that arrives meanwhile moves the watermark: the mark loses its
conditional write and the device simply stays online.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import Protocol

from aftercare.domain.advice import Advisor
from aftercare.domain.health import DeviceHealth
from aftercare.domain.maintenance import MaintenanceRules
from aftercare.domain.ports.health import HealthConflict, HealthStore
from aftercare.models.severity import Severity
from aftercare.models.tickets import TicketStatus, TicketSummary

SWEEP_LIMIT = 500


class SilenceIndex(HealthStore, Protocol):
    def due_checks(self, now: datetime, limit: int) -> list[str]:
        """Things whose next check is due (`next_check_at <= now`), at most `limit`."""
        ...


@dataclass(frozen=True)
class Silent:
    thing: str
    last_seen: datetime
    result: str  # the notifier's outcome, "no_owner", or "back_online" when a report won


def offline_id(health: DeviceHealth) -> str:
    return f"ADV-{health.thing}-offline_{health.last_seen:%Y%m%dT%H%M%S}"


def offline_facts(
    health: DeviceHealth, rules: MaintenanceRules, region: str, now: datetime
) -> TicketSummary:
    values = {"last_seen": f"{health.last_seen:%Y-%m-%d %H:%M} UTC"}
    return TicketSummary(
        ticket_id=offline_id(health),
        customer_id=health.customer_id or "",
        thing=health.thing,
        model=health.model or "",
        fault_code="ADVICE-DEVICE-OFFLINE",
        title_en=Template(rules.offline.title_en).safe_substitute(values),
        title_zh=Template(rules.offline.title_zh).safe_substitute(values),
        category="maintenance",
        region=region,
        severity=Severity.INFO,
        status=TicketStatus.OPEN,
        in_warranty=False,
        opened_at=now,
        first_seen=now,
    )


def sweep_silence(
    index: SilenceIndex,
    desk: Advisor,
    rules: MaintenanceRules,
    now: datetime,
    limit: int = SWEEP_LIMIT,
) -> list[Silent]:
    """One offline check per device whose heartbeat has lapsed (see module docstring)."""
    things = index.due_checks(now, limit)
    return _check_all(index, desk, rules, things, now)


def _check_all(
    index: SilenceIndex,
    desk: Advisor,
    rules: MaintenanceRules,
    things: Sequence[str],
    now: datetime,
) -> list[Silent]:
    views = index.read(list(things))
    checked: list[Silent] = []
    for view in views.values():
        health = view.health
        if health is None or health.offline_since is not None:
            continue
        if health.next_check_at is None or health.next_check_at > now:
            continue  # a report moved it on since the index was read
        result = "no_owner"
        if health.customer_id:
            result = desk.advise(offline_facts(health, rules, view.region or "", now), now)
        try:
            index.save(
                health.model_copy(update={"offline_since": now}), previous=health.last_sent_at
            )
        except HealthConflict:
            result = "back_online"
        checked.append(Silent(thing=health.thing, last_seen=health.last_seen, result=result))
    return checked
