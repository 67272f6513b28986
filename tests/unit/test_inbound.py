"""The one inbound pipeline: a decode step any message kind plugs into, one reject vocabulary,
and parking by channel."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aftercare.domain.inbound import Contract, Rejected, RejectReason, decode
from aftercare.domain.parking import CHANNELS, DIAGNOSTICS, FAULTS, receive
from aftercare.domain.parking import TELEMETRY as TELEMETRY_CHANNEL
from aftercare.domain.ports import ParkedMessage
from aftercare.models.payloads import FaultEnvelope
from pydantic import BaseModel, ConfigDict

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Telemetry(BaseModel):
    """A message kind the pipeline has never seen: it plugs in with a contract."""

    model_config = ConfigDict(extra="forbid")

    temperature: float


TELEMETRY = Contract(Telemetry, max_bytes=64, noun="a telemetry sample")


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


def test_reject_reasons_keep_their_stored_values() -> None:
    # Parked items and the rejection metrics' dimensions hold these strings: they never change
    assert sorted(r.value for r in RejectReason) == sorted(
        [
            "invalid_envelope",
            "invalid_envelope_payload",
            "payload_too_large",
            "not_utf8",
            "malformed_json",
            "not_a_json_object",
            "unknown_field",
            "schema_violation",
            "thing_mismatch",
            "stale_report",
            "future_timestamp",
            "unknown_device",
            "unknown_request",
            "duplicate_answer",
            "late_answer",
            "request_cancelled",
        ]
    )


def test_a_new_message_kind_decodes_with_its_contract() -> None:
    assert decode(b64('{"temperature": 21.5}'), TELEMETRY) == Telemetry(temperature=21.5)


@pytest.mark.parametrize(
    ("payload_b64", "reason", "detail"),
    [
        ("not base64!", RejectReason.NOT_BASE64, "payload_b64 is not base64"),
        (b64("x" * 65), RejectReason.PAYLOAD_TOO_LARGE, "a telemetry sample is at most 64"),
        (b64(b"\xff\xfe"), RejectReason.NOT_UTF8, "payload is not UTF-8"),
        (b64("{"), RejectReason.MALFORMED_JSON, "not JSON"),
        (b64("[1]"), RejectReason.NOT_AN_OBJECT, "got list"),
        (b64('{"temperature": 1, "x": 2}'), RejectReason.UNKNOWN_FIELD, "unknown field(s): x"),
        (b64('{"temperature": "hot"}'), RejectReason.SCHEMA_VIOLATION, "temperature:"),
    ],
    ids=["base64", "size", "utf8", "json", "object", "unknown-field", "schema"],
)
def test_each_decode_check_rejects_with_its_reason(
    payload_b64: str, reason: RejectReason, detail: str
) -> None:
    with pytest.raises(Rejected) as caught:
        decode(payload_b64, TELEMETRY)
    assert caught.value.reason is reason
    assert detail in caught.value.detail


def test_every_channel_parks_under_its_own_sources() -> None:
    assert [(c.source, c.dead_letter_source, c.queue) for c in CHANNELS] == [
        ("fault-intake", "fault-dlq", "FaultQueue"),
        ("diagnostics", "diagnostics-dlq", "DiagnosticsResultQueue"),
        ("telemetry", "telemetry-dlq", "TelemetryQueue"),
    ]
    assert (FAULTS, DIAGNOSTICS, TELEMETRY_CHANNEL) == CHANNELS


class Parked:
    def __init__(self) -> None:
        self.items: list[ParkedMessage] = []

    def park(self, message: ParkedMessage) -> None:
        self.items.append(message)


class Outcome(BaseModel):
    reason: RejectReason | None = None
    detail: str | None = None


def envelope(payload: Any) -> str:
    return FaultEnvelope(
        payload_b64=b64(json.dumps(payload)),
        thing="rt-x-0001",
        received_at=int(NOW.timestamp() * 1000),
        topic="dt/aftercare/rt-x-0001/fault",
    ).model_dump_json()


def take(body: str, parked: Parked, verdict: Outcome) -> Outcome:
    return receive(
        body,
        "m-1",
        FAULTS,
        apply=lambda _: verdict,
        refuse=lambda reason, detail: Outcome(reason=reason, detail=detail),
        parked=parked,
        now=NOW,
    )


def test_receive_parks_a_body_that_is_not_an_envelope() -> None:
    parked = Parked()
    outcome = take("{}", parked, Outcome())
    assert outcome.reason is RejectReason.INVALID_ENVELOPE
    assert [(p.source, p.reason, p.payload) for p in parked.items] == [
        ("fault-intake", "invalid_envelope", "{}")
    ]


def test_receive_parks_what_the_use_case_rejects_and_nothing_else() -> None:
    parked = Parked()
    take(envelope({"a": 1}), parked, Outcome())
    assert parked.items == []
    take(envelope({"a": 1}), parked, Outcome(reason=RejectReason.UNKNOWN_DEVICE, detail="who"))
    [item] = parked.items
    assert (item.reason, item.detail, item.thing, item.received_at) == (
        "unknown_device",
        "who",
        "rt-x-0001",
        NOW,
    )
