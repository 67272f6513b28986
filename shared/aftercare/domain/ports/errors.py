"""The errors the ticket ports raise, apart from the records (`records`): a module that
catches one need not define every ticket record's model."""

from __future__ import annotations


class CodeAlreadyOpen(Exception):
    """Another active ticket of the device already holds the code's open-fault lock."""

    def __init__(self, thing: str, code: str, ticket_id: str | None) -> None:
        super().__init__(f"{thing} already has the active ticket {ticket_id} for {code}")
        self.ticket_id = ticket_id


class DuplicateFault(Exception):
    """The (thing, fault_id) was already applied: nothing changed."""

    def __init__(self, ticket_id: str | None) -> None:
        super().__init__(f"fault already applied to ticket {ticket_id}")
        self.ticket_id = ticket_id


class LockConflict(Exception):
    """The open-fault lock changed between read and write: re-read and decide again."""


class TicketNotFound(LookupError):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} not found")
        self.ticket_id = ticket_id


class ConcurrentUpdate(Exception):
    """The ticket changed since it was read; the caller should retry with a fresh read."""
