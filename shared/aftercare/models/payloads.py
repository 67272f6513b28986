"""Wire payloads shared by devices and functions: the outward MQTT contract.

See ../../README.md ("Device contract"). Inbound payloads forbid unknown fields so a typo is an
error the sender hears about, not a silently dropped value.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from aftercare.models.ids import FaultCode, FaultId, RequestId, ThingName
from aftercare.models.severity import Severity

MAX_FAULT_PAYLOAD_BYTES = 16 * 1024
MAX_READINGS = 64
MAX_MESSAGE_CHARS = 1024

ReadingName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
ReadingValue = (
    bool
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=256)]
)


def _timestamp_text(value: Any) -> Any:
    # pydantic would read a number as epoch seconds; the contract says RFC 3339 text.
    if isinstance(value, int | float):
        raise ValueError("must be an RFC 3339 timestamp string with an offset, not a number")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_timestamp_text)]


class DiagnosticStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    UNSUPPORTED = "unsupported"


def _bounded_readings(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_READINGS:
        raise ValueError(f"at most {MAX_READINGS} readings are allowed, got {len(value)}")
    return value


class _Inbound(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=False, defer_build=True
    )


class FaultReport(_Inbound):
    """A device's report of one fault, published on ``dt/aftercare/{thing}/fault`` (QoS 1)."""

    fault_id: FaultId
    code: FaultCode
    severity: Severity | None = None
    occurred_at: Rfc3339
    firmware: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    readings: Annotated[dict[ReadingName, ReadingValue], AfterValidator(_bounded_readings)] = Field(
        default_factory=dict
    )
    message: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_CHARS)] | None = None
    thing: ThingName | None = None

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class DiagnosticsRequest(_Inbound):
    """Cloud → device on ``cmd/aftercare/{thing}/diagnostics/req``; ignored once expired."""

    request_id: RequestId
    routine: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
    params: dict[str, Any] = Field(default_factory=dict)
    expires_at: Rfc3339

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class DiagnosticsCancel(_Inbound):
    """Cloud → device on ``cmd/aftercare/{thing}/diagnostics/cancel``: do not run (or answer)
    this request; its ticket was resolved or cancelled. A device remembers the id until
    ``expires_at`` (after which it ignores the request anyway), so a cancel that overtakes its
    request still stops it."""

    request_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    cancelled_at: Rfc3339
    expires_at: Rfc3339


class DiagnosticsResult(_Inbound):
    """Device → cloud on ``cmd/aftercare/{thing}/diagnostics/res``."""

    request_id: RequestId
    status: DiagnosticStatus
    findings: dict[str, Any] = Field(default_factory=dict)
    remedied: bool = False
    completed_at: Rfc3339


class FaultEnvelope(BaseModel):
    """What the IoT topic rule delivers to the fault queue.

    The rule's SQL is ``SELECT encode(*, 'base64') AS payload_b64, topic(3) AS thing,
    timestamp() AS received_at, topic() AS topic FROM 'dt/aftercare/+/fault'``: the thing name
    comes from the topic (never the payload) and the payload stays opaque until the function
    validates it, so malformed JSON is reported with a reason instead of failing in the rule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    payload_b64: str
    thing: str
    received_at: int = Field(description="Epoch milliseconds when IoT Core received the message")
    topic: str


MAX_DIAGNOSTICS_PAYLOAD_BYTES = 64 * 1024


class DiagnosticsEnvelope(FaultEnvelope):
    """What the diagnostics topic rule delivers to the diagnostics result queue.

    Same shape as `FaultEnvelope`, from ``... FROM 'cmd/aftercare/+/diagnostics/res'``: the
    answering thing comes from the topic, the `DiagnosticsResult` stays opaque until validated.
    """
