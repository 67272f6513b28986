"""Telemetry intake: a queue batch of telemetry reports -> one health write per device.

Each message is decoded and judged on its own (rejects are parked with their reason, as on the
fault path); the accepted reports are then grouped by device and folded (`aftercare.domain.
health.fold`) into that device's health item with one conditional write. The write is
conditioned on the watermark it read, so two concurrent batches for one device cannot lose each
other's reports: the loser reads again and refolds.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from aftercare.domain.advice import Acted, MaintenanceDesk, act_on
from aftercare.domain.health import DeviceHealth, Received, fold
from aftercare.domain.inbound import Contract, Rejected, RejectReason, decode, received_time
from aftercare.domain.maintenance import MaintenanceRules
from aftercare.domain.parking import TELEMETRY, park_rejected, receive
from aftercare.domain.ports import ParkedStore
from aftercare.domain.ports.health import DeviceView, HealthConflict, HealthStore
from aftercare.models.ids import THING_NAME_PATTERN
from aftercare.models.telemetry import (
    MAX_TELEMETRY_PAYLOAD_BYTES,
    TelemetryEnvelope,
    TelemetryReport,
)

CONTRACT = Contract(TelemetryReport, MAX_TELEMETRY_PAYLOAD_BYTES, noun="a telemetry report")
MAX_AGE = timedelta(days=30)
MAX_AHEAD = timedelta(hours=24)
WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class QueueMessage:
    body: str
    message_id: str


@dataclass(frozen=True)
class Judgement:
    """One message's fate before folding: accepted (`received`) or rejected (`reason`)."""

    reason: RejectReason | None = None
    detail: str | None = None
    received: Received | None = None
    envelope: TelemetryEnvelope | None = None


@dataclass
class BatchOutcome:
    accepted: int = 0
    applied: int = 0
    skipped: int = 0  # not newer than the device's watermark (redelivered, duplicate, late)
    rejected: Counter[str] = field(default_factory=Counter)
    written: list[DeviceHealth] = field(default_factory=list)  # one per device with news
    acted: list[Acted] = field(default_factory=list)  # maintenance advice and tickets


def take_in_telemetry(
    messages: Sequence[QueueMessage],
    *,
    store: HealthStore,
    parked: ParkedStore,
    rules: MaintenanceRules,
    desk: MaintenanceDesk,
    now: datetime,
) -> BatchOutcome:
    """Apply a batch: park what is rejected, then one write per device with newer reports,
    after acting on the maintenance rules its new health fires (see `aftercare.domain.advice`)."""
    outcome = BatchOutcome()
    by_thing: dict[str, list[tuple[Received, TelemetryEnvelope]]] = defaultdict(list)
    for message in messages:
        judged = receive(
            message.body,
            message.message_id,
            TELEMETRY,
            apply=partial(_judge, message_id=message.message_id),
            refuse=_refused,
            parked=parked,
            now=now,
        )
        if judged.reason is not None:
            outcome.rejected[judged.reason.value] += 1
        elif judged.received is not None and judged.envelope is not None:
            by_thing[judged.envelope.thing].append((judged.received, judged.envelope))
    views = store.read(sorted(by_thing))
    for thing, items in by_thing.items():
        if thing not in views:
            for received, envelope in items:
                detail = f"device {thing} is not registered"
                park_rejected(
                    envelope,
                    received.message_id,
                    TELEMETRY,
                    reason=RejectReason.UNKNOWN_DEVICE,
                    detail=detail,
                    parked=parked,
                )
                outcome.rejected[RejectReason.UNKNOWN_DEVICE.value] += 1
            continue
        outcome.accepted += len(items)
        device = Device(views[thing], [r for r, _ in items])
        _apply_device(device, store=store, rules=rules, desk=desk, outcome=outcome, now=now)
    return outcome


@dataclass
class Device:
    view: DeviceView
    received: list[Received]


def _apply_device(
    device: Device,
    *,
    store: HealthStore,
    rules: MaintenanceRules,
    desk: MaintenanceDesk,
    outcome: BatchOutcome,
    now: datetime,
) -> None:
    view = device.view
    for _ in range(WRITE_ATTEMPTS):
        folded = fold(
            view.health,
            device.received,
            thing=view.thing,
            model=view.model,
            customer_id=view.customer_id,
            policy=rules.fold_policy(view.model),
        )
        if folded.health is None:
            outcome.skipped += folded.skipped
            return
        # Acting before the write: if the write is lost, the retry acts again, which the
        # notifier's and intake's own markers absorb; acting after it could be lost for good.
        health, acted = act_on(folded.health, region=view.region, rules=rules, desk=desk, now=now)
        previous = view.health.last_sent_at if view.health else None
        try:
            store.save(health, previous=previous)
        except HealthConflict:
            view = store.read([view.thing])[view.thing]
            continue
        outcome.applied += folded.applied
        outcome.skipped += folded.skipped
        outcome.written.append(health)
        outcome.acted += acted
        return
    raise HealthConflict(f"{view.thing}: its health kept moving over {WRITE_ATTEMPTS} attempts")


def _refused(reason: RejectReason, detail: str) -> Judgement:
    return Judgement(reason=reason, detail=detail)


def _judge(envelope: TelemetryEnvelope, *, message_id: str) -> Judgement:
    if not re.fullmatch(THING_NAME_PATTERN, envelope.thing):
        # Never from IoT Core (the policy confines a device to its own topics), but a key
        # DynamoDB refuses would fail the whole batch over and over.
        detail = f"envelope thing {envelope.thing[:140]!r} is not a thing name"
        return Judgement(reason=RejectReason.INVALID_ENVELOPE, detail=detail)
    try:
        report = decode(envelope.payload_b64, CONTRACT)
    except Rejected as exc:
        return Judgement(reason=exc.reason, detail=exc.detail)
    received_at = received_time(envelope)
    if report.thing is not None and report.thing != envelope.thing:
        detail = f"payload thing {report.thing!r} is not the topic's {envelope.thing!r}"
        return Judgement(reason=RejectReason.THING_MISMATCH, detail=detail)
    if report.sent_at < received_at - MAX_AGE:
        detail = f"sent_at {report.sent_at.isoformat()} is over {MAX_AGE.days} days old"
        return Judgement(reason=RejectReason.STALE_REPORT, detail=detail)
    if report.sent_at > received_at + MAX_AHEAD:
        detail = f"sent_at {report.sent_at.isoformat()} is over 24 h after it was received"
        return Judgement(reason=RejectReason.FUTURE_TIMESTAMP, detail=detail)
    received = Received(report=report, received_at=received_at, message_id=message_id)
    return Judgement(received=received, envelope=envelope)
