"""The support API's use cases, with who-may-see-what applied (see `access`).

Everything a customer may not see is reported as not found, exactly like something that does not
exist, so ids of other customers' tickets, devices and diagnostics leak nothing.

A ticket belongs to the customer it was opened for (`customer_id`, the device's owner at that
time), a device to its current owner: after a transfer the old owner still reads their tickets
but not the device or its new tickets, and the new owner reads only what was opened for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.domain.access import Caller
from aftercare.domain.diagnostics import start_diagnostic
from aftercare.domain.diagnostics_records import DiagnosticNotFound, ticket_of
from aftercare.domain.paging import TicketFilters, TicketPage, TicketQuery
from aftercare.domain.ports import (
    CommandPublisher,
    DeviceDirectory,
    DiagnosticsStore,
    TicketDetail,
    TicketNotFound,
    TicketReader,
)
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import DiagnosticRecord, Purpose


class DeviceNotFound(LookupError):
    def __init__(self, thing: str) -> None:
        super().__init__(f"device {thing} not found")
        self.thing = thing


class DeviceStatus(BaseModel):
    """A device, when the cloud last heard from it, and its tickets (newest first)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    thing: str
    model: str
    serial: str
    customer_id: str
    region: str
    firmware: str
    warranty_until: str
    last_seen: AwareDatetime | None = Field(
        default=None, description="newest fault report or diagnostics answer"
    )
    last_seen_via: str | None = Field(default=None, description="fault_report | diagnostics")
    active_tickets: int
    tickets: list[Ticket]


class Support:
    """Ticket, device and diagnostics use cases for one deployment."""

    def __init__(
        self,
        *,
        tickets: TicketReader,
        devices: DeviceDirectory,
        diagnostics: DiagnosticsStore,
        publisher: CommandPublisher,
        default_timeout: timedelta,
    ) -> None:
        self.tickets = tickets
        self.devices = devices
        self.diagnostics = diagnostics
        self.publisher = publisher
        self.default_timeout = default_timeout

    # ------------------------------------------------------------------ visibility

    def _visible_ticket(self, caller: Caller, ticket_id: str) -> TicketDetail:
        caller.require_reader()
        detail = self.tickets.get_ticket(ticket_id)
        if caller.may_see(detail.ticket.customer_id):
            return detail
        raise TicketNotFound(ticket_id)

    # ------------------------------------------------------------------ reads

    def list_tickets(
        self,
        caller: Caller,
        *,
        status: str | None,
        thing: str | None,
        limit: int,
        after: str | None = None,
        filters: TicketFilters | None = None,
    ) -> TicketPage:
        """One page of the tickets the caller may see, newest first, older than `after`.
        Staff: by status (or device); a customer: the tickets opened for them, on whichever
        device (one they own now or owned when the ticket was opened). `filters` narrow any
        of those (the queue's priority, region, SLA due and updated-since)."""
        caller.require_reader()
        things: tuple[str, ...] | None = None if thing is None else (thing,)
        query = TicketQuery(
            status=status,
            things=things,
            customer_id=caller.owner_scope,
            after=after,
            limit=limit,
            filters=filters or TicketFilters(),
        )
        return self.tickets.page_tickets(query)

    def ticket(self, caller: Caller, ticket_id: str) -> tuple[TicketDetail, list[DiagnosticRecord]]:
        detail = self._visible_ticket(caller, ticket_id)
        return detail, self.diagnostics.for_ticket(ticket_id)

    def diagnostics_of(self, caller: Caller, ticket_id: str) -> list[DiagnosticRecord]:
        return self.ticket(caller, ticket_id)[1]

    def diagnostic(self, caller: Caller, request_id: str) -> DiagnosticRecord:
        caller.require_reader()
        ticket_id = ticket_of(request_id)
        if ticket_id is None:
            raise DiagnosticNotFound(request_id)
        context = self.diagnostics.load(ticket_id, request_id)
        visible = context.ticket is not None and caller.may_see(context.ticket.customer_id)
        if context.record is None or not visible:
            raise DiagnosticNotFound(request_id)
        return context.record

    def device(self, caller: Caller, thing: str) -> DeviceStatus:
        caller.require_reader()
        device = self.devices.get(thing)
        if device is None or not caller.may_see(device.get("customer_id")):
            raise DeviceNotFound(thing)
        tickets = self.tickets.list_tickets(thing=thing)
        # a customer sees the device's tickets opened for them, not a previous owner's
        return device_status(device, [t for t in tickets if caller.may_see(t.customer_id)])

    # ------------------------------------------------------------------ actions

    def start(
        self,
        caller: Caller,
        ticket_id: str,
        *,
        routine: str | None,
        params: Mapping[str, Any] | None,
        timeout: timedelta | None,
        now: datetime,
    ) -> DiagnosticRecord:
        """Run a routine on the ticket's device (engineers only); the ticket's own routine and
        its default parameters unless given."""
        caller.require_engineer()
        ticket = self.diagnostics.load_ticket(ticket_id)
        return start_diagnostic(
            self.diagnostics,
            self.publisher,
            ticket,
            routine=routine or ticket.routine or "self_test",
            params=params,
            timeout=timeout or self.default_timeout,
            actor=caller.actor,
            purpose=Purpose.ENGINEER,
            now=now,
        )


def device_status(device: Mapping[str, Any], tickets: list[Ticket]) -> DeviceStatus:
    heard: list[tuple[datetime, str]] = [(t.last_seen, "fault_report") for t in tickets]
    if device.get("last_seen_at"):
        heard.append((datetime.fromisoformat(str(device["last_seen_at"])), "diagnostics"))
    last = max(heard, default=None)
    return DeviceStatus(
        thing=str(device["thing"]),
        model=str(device.get("model", "")),
        serial=str(device.get("serial", "")),
        customer_id=str(device.get("customer_id", "")),
        region=str(device.get("region", "")),
        firmware=str(device.get("firmware", "")),
        warranty_until=str(device.get("warranty_until", "")),
        last_seen=last[0] if last else None,
        last_seen_via=last[1] if last else None,
        active_tickets=sum(1 for t in tickets if t.active),
        tickets=tickets,
    )
