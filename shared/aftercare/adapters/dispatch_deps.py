"""The dispatch use cases' adapters, built once per process from table names (the Dispatcher
function, the dispatch API function and the CLI share it)."""

from __future__ import annotations

from functools import cache

from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.dispatch_marks import (
    DynamoCustomerPreferences,
    DynamoDispatchMarks,
    DynamoFixHistory,
    DynamoLeadTimes,
)
from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.domain.channels import load_channel_policy
from aftercare.domain.dispatch_policy import load_dispatch_policy
from aftercare.domain.dispatching import DispatchDeps
from aftercare.domain.pricing import load_price_table
from aftercare.domain.rules import load_catalog
from aftercare.settings import EnvSettings, load_settings


def dispatch_deps(
    *, tickets_table: str, field_table: str, inventory_table: str, customers_table: str
) -> DispatchDeps:
    calendar = DynamoCalendar(table=field_table, tickets_table=tickets_table)
    return DispatchDeps(
        tickets=DynamoTicketReader(tickets_table=tickets_table),
        directory=DynamoEngineerDirectory(table=field_table),
        bookings=calendar,
        calendar=calendar,
        marks=DynamoDispatchMarks(tickets_table=tickets_table),
        lead_times=DynamoLeadTimes(inventory_table=inventory_table),
        history=DynamoFixHistory(tickets_table=tickets_table),
        customers=DynamoCustomerPreferences(customers_table=customers_table),
        policy=load_dispatch_policy(),
        catalog=load_catalog(),
        prices=load_price_table(),
        channels=load_channel_policy(),
    )


class DispatchSettings(EnvSettings):
    """The tables a dispatch function is given (template: Dispatcher, DispatchApi)."""

    tickets_table: str
    field_table: str
    inventory_table: str
    customers_table: str


@cache
def dispatch_deps_from_env() -> DispatchDeps:
    """The process's dispatch adapters, from its settings read once (a missing variable fails
    with its name)."""
    settings = load_settings(DispatchSettings)
    return dispatch_deps(
        tickets_table=settings.tickets_table,
        field_table=settings.field_table,
        inventory_table=settings.inventory_table,
        customers_table=settings.customers_table,
    )
