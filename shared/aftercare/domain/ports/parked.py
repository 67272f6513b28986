"""Where rejected and dead-lettered messages go."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict


class ParkedMessage(BaseModel):
    """A rejected or dead-lettered message with its reason (here, not among the ticket
    records: the recorders that park messages need none of those)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    source: str
    reason: str
    detail: str
    received_at: AwareDatetime
    payload: str
    thing: str | None = None
    envelope: dict[str, Any] | None = None
    message_id: str


class ParkedStore(Protocol):
    """Where rejected and dead-lettered messages are kept, with reasons, for replay."""

    def park(self, message: ParkedMessage) -> None: ...


class ReplayFailed(Exception):
    """The copy of a parked message could not be handed to its queue."""


class ParkedArchive(Protocol):
    """The parked items as operators see them: read, and annotated with each replay."""

    def list(self) -> list[dict[str, Any]]:
        """Every parked item, newest first (envelopes decoded)."""
        ...

    def get(self, source: str, parked_key: str) -> dict[str, Any] | None: ...

    def with_envelope(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item with its full envelope when it was kept elsewhere (`envelope_ref`); when
        that cannot be read, the item says why in `envelope_omitted`."""
        ...

    def record_replay(self, source: str, parked_key: str, event: dict[str, Any]) -> None:
        """Append one replay (when, by whom, outcome) to the item's history; the item stays."""
        ...


class Redelivery(Protocol):
    """Sends a message body to one of the template's queues (by logical id)."""

    def send(self, queue: str, body: str) -> str | None:
        """The message id; `ReplayFailed` when the queue did not take it."""
        ...
