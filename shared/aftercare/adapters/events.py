"""EventBridge publisher for domain events (low stock, …)."""

from __future__ import annotations

import json
from typing import Any

from aftercare.adapters.aws import LazyClient

SOURCE = "aftercare"


class EventBridgePublisher:
    """Puts one event on the Aftercare bus; raises if EventBridge did not accept it."""

    def __init__(self, *, bus_name: str, events: Any | None = None) -> None:
        self.bus_name = bus_name
        self._events = events

    events = LazyClient("events")

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:
        response = self.events.put_events(
            Entries=[
                {
                    "EventBusName": self.bus_name,
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                }
            ]
        )
        entry = response["Entries"][0]
        if response.get("FailedEntryCount") or "EventId" not in entry:
            raise RuntimeError(f"EventBridge rejected {detail_type}: {entry.get('ErrorMessage')}")
        return str(entry["EventId"])
