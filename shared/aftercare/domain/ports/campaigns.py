"""Campaign ports: walking an incident's children a page at a time, recording each page's
counts on the incident, and handing the next page to the campaign queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from aftercare.domain.ports.incidents import IncidentReads

if TYPE_CHECKING:
    from aftercare.domain.incident_links import IncidentLink
    from aftercare.domain.incidents import CampaignCursor, CampaignPage, Incident
    from aftercare.domain.tickets import Ticket


class CampaignNotQueued(Exception):
    """The campaign queue did not take the message (the caller may retry)."""


class ChildrenPage(NamedTuple):
    """Up to a page of child links in walk order, and where the next page starts (None: the
    walk is over)."""

    links: Sequence[IncidentLink]
    next: CampaignCursor | None


class CampaignStore(IncidentReads, Protocol):
    def children_page(
        self, incident_id: str, cursor: CampaignCursor, limit: int, shards: int
    ) -> ChildrenPage:
        """The next `limit` child links from `cursor`: shard by shard, each in ticket id
        order (a shard's child links are one DynamoDB partition, sorted by ticket id)."""
        ...

    def record_page(self, incident: Incident, pages_done_before: int) -> None:
        """Store the incident (its campaign with one more page counted) only while it is still
        `mitigating` with `pages_done_before` pages recorded; else raise IncidentMoved (an
        earlier delivery of the page recorded it). Resolving also removes its active pointer."""
        ...

    def reset_storm(self, model: str, group: str, windows: Sequence[int], shards: int) -> None: ...


class TicketBatch(Protocol):
    def tickets_by_id(self, ticket_ids: list[str]) -> dict[str, Ticket]:
        """The tickets found among `ticket_ids` (a missing one is left out)."""
        ...


class CampaignQueue(Protocol):
    """Where campaign pages wait for the worker. Raises CampaignNotQueued."""

    def enqueue(self, page: CampaignPage) -> None: ...
