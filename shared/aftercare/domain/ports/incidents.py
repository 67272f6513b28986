"""Incident ports: the sharded storm counter, the incident records and their child links."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from aftercare.domain.incident_links import IncidentLink
    from aftercare.domain.incidents import ChildFacts, Incident, IncidentStats


class StormTally(BaseModel):
    """The storm counter's shards summed per window, and the tickets they counted."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    counts: dict[int, int] = Field(default_factory=dict)
    ticket_ids: list[str] = Field(default_factory=list)

    def of(self, window: int) -> int:
        return self.counts.get(window, 0)


class CounterShard(BaseModel):
    """One item of the windowed storm counter: (model, storm group, window, shard)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    model: str
    group: str  # `StormGroup.key`: `code=<code>` or `category=<category>`
    window: int
    shard: int


class IncidentAlreadyOpen(Exception):
    """Another worker opened the incident for this (model, storm group) first."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(incident_id)
        self.incident_id = incident_id


class IncidentNotFound(LookupError):
    """No incident with this id."""


class IncidentMoved(Exception):
    """The incident's status changed since it was read (another resolve was faster)."""


class StormCounter(Protocol):
    """The windowed storm counter, one item per (model, storm group, window, shard)."""

    def count_opening(self, item: CounterShard, ticket_id: str, expires_at: int) -> int:
        """Add one new ticket to a shard; return the shard's count after it."""
        ...

    def storm_tally(
        self, model: str, group: str, windows: Sequence[int], shards: int
    ) -> StormTally:
        """Every shard of `windows`, summed (one batch read)."""
        ...


class IncidentWrites(StormCounter, Protocol):
    """Opening an incident and linking children to it."""

    def open_incident(self, incident: Incident) -> None:
        """Create the incident and the active pointers of (model, each code it covers)
        atomically.

        Raises IncidentAlreadyOpen (with the open one's id) when one is open already for
        any of its codes."""
        ...

    def join(self, facts: ChildFacts) -> int:
        """Add a child to its incident's shard (counters, sets, trend); return how many
        children joined that shard while the incident was open, this one included."""
        ...

    def link_earlier(self, incident_id: str, ticket_ids: Sequence[str], at: datetime) -> int:
        """Link tickets opened before the incident (ticket `incident_id`, child link, shard
        counters), each once; return how many were linked now."""
        ...


class IncidentReads(Protocol):
    def get_incident(self, incident_id: str) -> Incident | None: ...

    def incident_stats(self, incident_id: str, shards: int) -> IncidentStats: ...

    def children(
        self, incident_id: str, shards: int, limit: int | None = None
    ) -> list[IncidentLink]: ...

    def list_incidents(self, limit: int = 100) -> list[Incident]: ...


class IncidentMessages(Protocol):
    """Where the notifier counts the messages an incident sent and saved."""

    def count_messages(self, incident_id: str, thing: str, *, saved: int, sent: int) -> None: ...
