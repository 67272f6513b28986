"""Inbound inputs shared by the intake tests: a store holding one registered device, and the
SQS body a topic rule (faults, diagnostics answers) produces for a device's payload."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime

from aftercare.domain.ports import DeviceRecord

from tests.fakes.stores import FakeTicketStore

THING = "ac-0001"
FAULT_TOPIC = f"dt/aftercare/{THING}/fault"


def store_with_device() -> FakeTicketStore:
    """A ticket store in which `ac-0001` (AC-HP, customer c-std, in warranty) is registered."""
    store = FakeTicketStore()
    store.devices[THING] = DeviceRecord(
        thing=THING,
        serial="SN1",
        model="AC-HP",
        customer_id="c-std",
        region="eu-west",
        activated_at=date(2025, 1, 1),
        warranty_until=date(2027, 1, 1),
        firmware="1.0.0",
    )
    return store


def envelope_body(text: str, thing: str, topic: str, at: datetime) -> str:
    """The rule's SQS body carrying `text` as what `thing` published on `topic` (lone
    surrogates kept, as a hostile device could send them)."""
    return json.dumps(
        {
            "payload_b64": base64.b64encode(text.encode("utf-8", "surrogatepass")).decode(),
            "thing": thing,
            "received_at": int(at.timestamp() * 1000),
            "topic": topic,
        }
    )
