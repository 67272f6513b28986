"""Clock and fault ids of the device agent."""

from __future__ import annotations

import os
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_fault_id(now: datetime | None = None) -> str:
    """A 26-character, time-ordered id (ULID layout: 48-bit epoch milliseconds, 80 random bits)."""
    millis = int((now or utc_now()).timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
