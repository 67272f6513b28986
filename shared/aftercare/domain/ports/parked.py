"""Where rejected and dead-lettered messages go."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aftercare.domain.ports.records import ParkedMessage


class ParkedStore(Protocol):
    """Where rejected and dead-lettered messages are kept, with reasons, for replay."""

    def park(self, message: ParkedMessage) -> None: ...
