"""A fault's severity: reported by devices (`aftercare.models.payloads`) and carried by every
ticket, so in a module of its own that a ticket's models import without the wire payloads'."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"
