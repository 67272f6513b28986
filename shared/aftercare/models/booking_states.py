"""A booking's states (enums only): the ticket and visit records carry them, so they are
here and not among the field models (`aftercare.models.field`), which a ticket does not need."""

from __future__ import annotations

from enum import StrEnum


class BookingStatus(StrEnum):
    SCHEDULED = "scheduled"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    COMPLETED = "completed"
    CANNOT_COMPLETE = "cannot_complete"
    CANCELLED = "cancelled"


class BookingSource(StrEnum):
    """Who put the visit on the calendar (KPIs and the audit timeline)."""

    CUSTOMER = "customer"
    AUTO = "auto"
    DISPATCHER = "dispatcher"


class VerificationOutcome(StrEnum):
    """How a completed visit's fix was confirmed."""

    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"
    UNVERIFIED = "unverified"
