"""Inbound device messages: one decode step and one vocabulary of reasons to reject.

Everything a device publishes reaches a function the same way: an IoT topic rule wraps the
payload as base64 in an envelope (with the thing name taken from the topic) and queues it.
`decode` turns that payload into the message's model in one order of checks, each failure a
`Rejected` with its reason: base64 -> size -> UTF-8 -> strict JSON -> a JSON object -> the
model's schema. A new kind of message (telemetry, a customer report) plugs in with its
`Contract`: the model and its size limit; what the message then means is its use case's job.

Reject reasons are stored on parked items and are the `reason` dimension of the rejection
metrics: their values never change (a new reason is a new value).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from aftercare.models.payloads import FaultEnvelope
from aftercare.models.strict_json import ContentRejected, loads_strict


class RejectReason(StrEnum):
    """Why an inbound message was not applied (one vocabulary for every inbound stream)."""

    # the envelope and the payload (any stream)
    INVALID_ENVELOPE = "invalid_envelope"
    NOT_BASE64 = "invalid_envelope_payload"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_UTF8 = "not_utf8"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_a_json_object"
    UNKNOWN_FIELD = "unknown_field"
    SCHEMA_VIOLATION = "schema_violation"
    THING_MISMATCH = "thing_mismatch"
    # fault reports
    STALE_REPORT = "stale_report"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNKNOWN_DEVICE = "unknown_device"
    # diagnostics answers
    UNKNOWN_REQUEST = "unknown_request"
    DUPLICATE_ANSWER = "duplicate_answer"
    LATE_ANSWER = "late_answer"
    REQUEST_CANCELLED = "request_cancelled"


class Rejected(Exception):
    """A message that can never be processed as sent; parked with its reason."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Contract(Generic[M]):
    """What one kind of inbound message must be: its model and its size limit in bytes.
    `noun` names the message in the too-large detail ("a fault report is at most ...")."""

    model: type[M]
    max_bytes: int
    noun: str


def decode(payload_b64: str, contract: Contract[M]) -> M:
    """The envelope's payload validated against the contract, or `Rejected` saying why not."""
    return _validated(_json_object(_payload_bytes(payload_b64, contract)), contract.model)


def received_time(envelope: FaultEnvelope) -> datetime:
    """When IoT Core received the message (the envelope carries epoch milliseconds)."""
    return datetime.fromtimestamp(envelope.received_at / 1000, tz=UTC)


def _payload_bytes(payload_b64: str, contract: Contract[Any]) -> bytes:
    try:
        raw = base64.b64decode(payload_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected(RejectReason.NOT_BASE64, f"payload_b64 is not base64: {exc}") from exc
    if len(raw) > contract.max_bytes:
        raise Rejected(
            RejectReason.PAYLOAD_TOO_LARGE,
            f"{len(raw)} bytes; {contract.noun} is at most {contract.max_bytes} bytes",
        )
    return raw


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(RejectReason.NOT_UTF8, f"payload is not UTF-8: {exc}") from exc
    try:
        data = loads_strict(text)
    except ContentRejected as exc:
        raise Rejected(RejectReason(exc.reason), exc.detail) from exc
    if not isinstance(data, dict):
        raise Rejected(
            RejectReason.NOT_AN_OBJECT, f"payload must be a JSON object, got {type(data).__name__}"
        )
    return data


def _validated(data: dict[str, Any], model: type[M]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise schema_rejection(exc) from exc


def schema_rejection(exc: ValidationError) -> Rejected:
    """A schema failure as a rejection: unknown fields named, otherwise every error listed."""
    errors = exc.errors(include_url=False, include_input=False)
    unknown = [".".join(map(str, e["loc"])) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return Rejected(RejectReason.UNKNOWN_FIELD, "unknown field(s): " + ", ".join(unknown))
    return Rejected(RejectReason.SCHEMA_VIOLATION, describe_errors(exc))


def describe_errors(exc: ValidationError) -> str:
    """Every validation error as `location: message`, `; `-separated."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )
