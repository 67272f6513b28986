"""Publishes waiting for their PUBACK, by MQTT message id."""

from __future__ import annotations

import threading

from paho.mqtt.client import MQTTMessage
from paho.mqtt.reasoncodes import ReasonCode


class InFlight:
    """mid -> outbox entry id (None for non-outbox messages) of unacknowledged publishes.

    The network thread can handle a PUBACK before ``publish()`` has returned the mid to the
    publishing thread; such an early acknowledgement is parked until the mid is registered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry_by_mid: dict[int, int | None] = {}
        self._entries: set[int] = set()
        self._early: dict[int, ReasonCode] = {}

    def register(self, mid: int, entry_id: int | None) -> ReasonCode | None:
        """Remember a publish; returns its acknowledgement if that already arrived."""
        with self._lock:
            early = self._early.pop(mid, None)
            if early is None:
                self._entry_by_mid[mid] = entry_id
                if entry_id is not None:
                    self._entries.add(entry_id)
            return early

    def acknowledge(self, mid: int, reason: ReasonCode) -> tuple[bool, int | None]:
        """Forget an acknowledged mid; returns (known, entry id)."""
        with self._lock:
            if mid not in self._entry_by_mid:
                self._early[mid] = reason
                return False, None
            entry_id = self._entry_by_mid.pop(mid)
            if entry_id is not None:
                self._entries.discard(entry_id)
            return True, entry_id

    def holds(self, entry_id: int) -> bool:
        with self._lock:
            return entry_id in self._entries

    def reset(self, dropped: list[MQTTMessage]) -> list[MQTTMessage]:
        """Forget everything; returns the dropped messages that were not outbox entries."""
        with self._lock:
            others = [m for m in dropped if self._entry_by_mid.get(m.mid) is None]
            self._entry_by_mid.clear()
            self._entries.clear()
            self._early.clear()
        return others
