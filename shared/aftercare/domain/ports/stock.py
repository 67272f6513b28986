"""Stock ports: adjustments, low-stock markers, consumption history, expired holds."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aftercare.domain.parts import StockLevel
    from aftercare.domain.stock import LowStockEvent, StockAdjustment


class InventoryWriter(Protocol):
    """Stock changes that are not tied to a ticket."""

    def adjust(self, adjustment: StockAdjustment) -> StockLevel:
        """Apply a counted adjustment; raises OutOfStock if it would leave available < 0."""
        ...


class LowStockSink(Protocol):
    """Where low-stock crossings go: claimed once, published, then marked published."""

    def claim_low_stock(self, event: LowStockEvent) -> bool: ...

    def mark_published(self, event: LowStockEvent) -> None: ...


class StockHistory(Protocol):
    def consumed_since(self, sku: str, warehouse: str, since: datetime) -> int: ...


class ExpiredHolds(Protocol):
    def expired_holds(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]: ...
