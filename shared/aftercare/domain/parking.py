"""Parking: every inbound queue message is applied, or parked with its reason.

A message that can never succeed as sent (bad envelope, invalid payload, a rejection by its use
case) is parked and acknowledged, so it is not retried pointlessly; storage errors propagate so
the message is retried and, after the queue's maxReceiveCount, dead-lettered (and then parked
from the dead-letter queue with the reason it died).

A `Channel` is one inbound stream (fault reports, diagnostics answers; later telemetry and
customer reports): its envelope, the `source` its parked items carry, and the queue a replay
sends them back to. `receive` is the one way a queue message is taken in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from aftercare.domain.inbound import RejectReason, describe_errors, received_time
from aftercare.domain.ports import ParkedMessage, ParkedStore
from aftercare.models.payloads import (
    MAX_DIAGNOSTICS_PAYLOAD_BYTES,
    DiagnosticsEnvelope,
    FaultEnvelope,
)
from aftercare.models.strict_json import ContentRejected, loads_strict
from aftercare.models.telemetry import MAX_TELEMETRY_PAYLOAD_BYTES, TelemetryEnvelope

MAX_DISPLAY_PAYLOAD = 16 * 1024

E = TypeVar("E", bound=FaultEnvelope)
Out = TypeVar("Out", bound="Judged")


class Judged(Protocol):
    """A use case's outcome for one message: a `reason` when it was rejected."""

    @property
    def reason(self) -> RejectReason | None: ...

    @property
    def detail(self) -> str | None: ...


@dataclass(frozen=True)
class Channel(Generic[E]):
    """One inbound stream, from its topic rule's queue to its use case."""

    name: str  # the envelope's kind, in the invalid-envelope detail
    source: str  # `source` of the items parked when a message is rejected
    dead_letter_source: str  # ... and when it is dead-lettered
    queue: str  # the template's logical id of the queue a replay sends to
    envelope: type[E]
    kept_body: int  # how much of a body that is not an envelope is kept
    lists_errors: bool  # whether the invalid-envelope detail lists each error


FAULTS: Channel[FaultEnvelope] = Channel(
    name="fault",
    source="fault-intake",
    dead_letter_source="fault-dlq",
    queue="FaultQueue",
    envelope=FaultEnvelope,
    kept_body=MAX_DISPLAY_PAYLOAD,
    lists_errors=True,
)
DIAGNOSTICS: Channel[DiagnosticsEnvelope] = Channel(
    name="diagnostics",
    source="diagnostics",
    dead_letter_source="diagnostics-dlq",
    queue="DiagnosticsResultQueue",
    envelope=DiagnosticsEnvelope,
    kept_body=MAX_DIAGNOSTICS_PAYLOAD_BYTES,
    lists_errors=False,
)
TELEMETRY: Channel[TelemetryEnvelope] = Channel(
    name="telemetry",
    source="telemetry",
    dead_letter_source="telemetry-dlq",
    queue="TelemetryQueue",
    envelope=TelemetryEnvelope,
    kept_body=MAX_TELEMETRY_PAYLOAD_BYTES,
    lists_errors=False,
)
CHANNELS: tuple[Channel[Any], ...] = (FAULTS, DIAGNOSTICS, TELEMETRY)


def printable_payload(payload_b64: str) -> str:
    """The payload as text for people (lossless for UTF-8; base64 kept in the envelope)."""
    try:
        raw = base64.b64decode(payload_b64, validate=True)
    except (binascii.Error, ValueError):
        return payload_b64[:MAX_DISPLAY_PAYLOAD]
    return raw.decode("utf-8", errors="replace")[:MAX_DISPLAY_PAYLOAD]


def _invalid_envelope_detail(channel: Channel[Any], exc: ValidationError) -> str:
    detail = f"not an IoT rule {channel.name} envelope: {exc.error_count()} error(s)"
    if not channel.lists_errors:
        return detail
    return f"{detail}: {describe_errors(exc)}"


def receive(
    body: str,
    message_id: str,
    channel: Channel[E],
    *,
    apply: Callable[[E], Out],
    refuse: Callable[[RejectReason, str], Out],
    parked: ParkedStore,
    now: datetime,
) -> Out:
    """Read one queue message's envelope and `apply` it; park it when either rejects it.

    `refuse` makes the outcome of a message whose envelope is not one (parked as
    `invalid_envelope`); what `apply` raises propagates (the message is retried)."""
    try:
        envelope = channel.envelope.model_validate_json(body)
    except ValidationError as exc:
        detail = _invalid_envelope_detail(channel, exc)
        parked.park(
            ParkedMessage(
                source=channel.source,
                reason=RejectReason.INVALID_ENVELOPE.value,
                detail=detail,
                received_at=now,
                payload=body[: channel.kept_body],
                message_id=message_id,
            )
        )
        return refuse(RejectReason.INVALID_ENVELOPE, detail)
    outcome = apply(envelope)
    if outcome.reason is not None:
        park_rejected(
            envelope,
            message_id,
            channel,
            reason=outcome.reason,
            detail=outcome.detail,
            parked=parked,
        )
    return outcome


def park_rejected(
    envelope: FaultEnvelope,
    message_id: str,
    channel: Channel[Any],
    *,
    reason: RejectReason,
    detail: str | None,
    parked: ParkedStore,
) -> None:
    """Park a message whose envelope was read but whose content or meaning was rejected."""
    parked.park(
        ParkedMessage(
            source=channel.source,
            reason=reason.value,
            detail=detail or "",
            received_at=received_time(envelope),
            payload=printable_payload(envelope.payload_b64),
            thing=envelope.thing,
            envelope=envelope.model_dump(),
            message_id=message_id,
        )
    )


# --------------------------------------------------------------------------- dead letters


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
    source: str = FAULTS.dead_letter_source,
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
