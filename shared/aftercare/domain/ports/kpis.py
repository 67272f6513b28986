"""What the KPI report reads: the aggregator's counters and the engineers' working time."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from aftercare.models.field import Engineer


class KpiReads(Protocol):
    """KpiTable's counters (per dimension value: "region#eu-west", "all#all")."""

    def counters(self, dim: str, first: date, last: date) -> list[dict[str, Any]]:
        """One row of counters per day with events, `first` to `last` inclusive."""
        ...

    def daily_counters(self, dim: str, first: date, last: date) -> dict[date, dict[str, Any]]:
        """The same rows as `counters`, keyed by their day."""
        ...

    def backlog_rows(self, dim: str) -> dict[date, dict[str, Any]]:
        """Active-ticket counters per opening day."""
        ...

    def dimension_values(self, name: str) -> list[str]:
        """Every value the dimension has been counted under."""
        ...


class Engineers(Protocol):
    """The engineer directory (working hours and absences, for utilisation)."""

    def list_engineers(self, region: str | None = None) -> list[Engineer]: ...
