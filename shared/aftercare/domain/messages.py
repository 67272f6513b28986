"""Queue messages of the fault path: each one is applied by fault intake, or parked with its
reason (see `aftercare.domain.parking`)."""

from __future__ import annotations

from datetime import datetime

from aftercare.domain.inbound import RejectReason
from aftercare.domain.intake import IntakeOutcome, IntakeRules, OutcomeKind, intake_fault
from aftercare.domain.parking import FAULTS, receive
from aftercare.domain.ports import IntakeStore, ParkedStore
from aftercare.domain.storms import StormWatch
from aftercare.models.payloads import FaultEnvelope


def handle_fault_message(
    body: str,
    message_id: str,
    *,
    store: IntakeStore,
    parked: ParkedStore,
    rules: IntakeRules,
    now: datetime,
    watch: StormWatch | None = None,
) -> IntakeOutcome:
    """Apply one fault-queue message; park it when it is rejected."""

    def apply(envelope: FaultEnvelope) -> IntakeOutcome:
        return intake_fault(envelope, store, rules, watch)

    def refuse(reason: RejectReason, detail: str) -> IntakeOutcome:
        return IntakeOutcome(kind=OutcomeKind.REJECTED, thing="", reason=reason, detail=detail)

    return receive(body, message_id, FAULTS, apply=apply, refuse=refuse, parked=parked, now=now)
