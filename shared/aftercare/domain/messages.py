"""Queue messages of the fault path: each one is applied, or parked with its reason.

A message that can never succeed as sent (bad envelope, invalid report, unknown device) is parked
and acknowledged, so it is not retried pointlessly; storage errors propagate so the message is
retried and, after the queue's maxReceiveCount, dead-lettered (and then parked by the recorder).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from aftercare.domain.intake import (
    IntakeOutcome,
    IntakeRules,
    OutcomeKind,
    RejectReason,
    intake_fault,
)
from aftercare.domain.ports import IntakeStore, ParkedMessage, ParkedStore
from aftercare.models.payloads import FaultEnvelope
from aftercare.models.strict_json import ContentRejected, loads_strict

FAULT_SOURCE = "fault-intake"
DEAD_LETTER_SOURCE = "fault-dlq"
MAX_DISPLAY_PAYLOAD = 16 * 1024


def printable_payload(payload_b64: str) -> str:
    """The payload as text for people (lossless for UTF-8; base64 kept in the envelope)."""
    try:
        raw = base64.b64decode(payload_b64, validate=True)
    except (binascii.Error, ValueError):
        return payload_b64[:MAX_DISPLAY_PAYLOAD]
    return raw.decode("utf-8", errors="replace")[:MAX_DISPLAY_PAYLOAD]


def handle_fault_message(
    body: str,
    message_id: str,
    *,
    store: IntakeStore,
    parked: ParkedStore,
    rules: IntakeRules,
    now: datetime,
) -> IntakeOutcome:
    """Apply one fault-queue message; park it when it is rejected."""
    try:
        envelope = FaultEnvelope.model_validate_json(body)
    except ValidationError as exc:
        detail = f"not an IoT rule fault envelope: {exc.error_count()} error(s): " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        parked.park(
            ParkedMessage(
                source=FAULT_SOURCE,
                reason=RejectReason.INVALID_ENVELOPE.value,
                detail=detail,
                received_at=now,
                payload=body[:MAX_DISPLAY_PAYLOAD],
                message_id=message_id,
            )
        )
        return IntakeOutcome(
            kind=OutcomeKind.REJECTED, thing="", reason=RejectReason.INVALID_ENVELOPE, detail=detail
        )
    outcome = intake_fault(envelope, store, rules)
    if outcome.kind is OutcomeKind.REJECTED:
        parked.park(
            ParkedMessage(
                source=FAULT_SOURCE,
                reason=str(outcome.reason.value if outcome.reason else "rejected"),
                detail=outcome.detail or "",
                received_at=datetime.fromtimestamp(envelope.received_at / 1000, tz=UTC),
                payload=printable_payload(envelope.payload_b64),
                thing=envelope.thing,
                envelope=envelope.model_dump(),
                message_id=message_id,
            )
        )
    return outcome


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    detail: str
    payload: str
    thing: str | None = None
    envelope: dict[str, Any] | None = None


def _rule_error(data: dict[str, Any]) -> DeadLetter:
    # Anything can be sent to a dead-letter queue: read the error document defensively.
    failures = [f for f in data.get("failures") or [] if isinstance(f, dict)] or [{}]
    detail = "; ".join(str(f.get("errorMessage", "")) for f in failures)
    topic = str(data.get("topic", ""))
    parts = topic.split("/")
    return DeadLetter(
        reason=f"rule_error:{failures[0].get('failedAction', 'unknown')}",
        detail=f"rule {data.get('ruleName')}: {detail}",
        payload=printable_payload(str(data.get("base64OriginalPayload", ""))),
        thing=parts[2] if len(parts) > 3 else None,
        envelope=data,
    )


def classify_dead_letter(body: str, receive_count: int) -> DeadLetter:
    """Why one message was dead-lettered, from its shape."""
    try:
        data = loads_strict(body)
    except ContentRejected:
        data = None
    if isinstance(data, dict) and isinstance(data.get("failures"), list):
        return _rule_error(data)
    if isinstance(data, dict) and "payload_b64" in data:
        return DeadLetter(
            reason="processing_failed_after_retries",
            detail=(
                f"processing failed {receive_count} times; see the FaultIntake function's logs "
                "for the error of each attempt"
            ),
            payload=printable_payload(str(data["payload_b64"])),
            thing=data["thing"] if isinstance(data.get("thing"), str) else None,
            envelope=data,
        )
    shape = "JSON of unknown shape" if data is not None else "body is not JSON"
    return DeadLetter(
        "unrecognised_dead_letter", shape, body[:MAX_DISPLAY_PAYLOAD], envelope={"body": body}
    )


def record_dead_letter(
    body: str,
    message_id: str,
    receive_count: int,
    sent_at: datetime,
    parked: ParkedStore,
    *,
    source: str = DEAD_LETTER_SOURCE,
) -> str:
    """Park one dead-lettered message with the reason it died; returns that reason."""
    letter = classify_dead_letter(body, receive_count)
    parked.park(
        ParkedMessage(
            source=source,
            reason=letter.reason,
            detail=letter.detail,
            received_at=sent_at,
            payload=letter.payload,
            thing=letter.thing,
            envelope=letter.envelope,
            message_id=message_id,
        )
    )
    return letter.reason
