"""The device registry as the support use cases read it."""

from __future__ import annotations

from typing import Any, Protocol


class DeviceDirectory(Protocol):
    def get(self, thing: str) -> dict[str, Any] | None: ...

    def things_of(self, customer_id: str) -> list[str]: ...
