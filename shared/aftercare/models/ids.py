"""Identifiers of the contract, each defined once: what a thing name, a fault id, a request id
or a ticket id may look like, wherever one arrives (MQTT payload, API path, query string)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

THING_NAME_PATTERN = r"^[A-Za-z0-9:_-]{1,128}$"
"""AWS IoT's thing-name alphabet; also the broker identity and the second topic level."""
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
"""A diagnostics request id (``<ticket_id>_<token>``); a fault id has the same shape."""
TICKET_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

ThingName = Annotated[str, StringConstraints(pattern=THING_NAME_PATTERN)]
FaultId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]
RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]
TicketId = Annotated[str, StringConstraints(pattern=TICKET_ID_PATTERN)]
FaultCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,47}$")]
