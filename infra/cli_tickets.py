"""`aftercare tickets|devices|catalog …`: what an engineer reads and moves day to day."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from aftercare.domain.lifecycle import change_status
from aftercare.domain.paging import MAX_PAGE
from aftercare.domain.rules import load_catalog
from aftercare.domain.ticket_view import ticket_view
from aftercare.models.tickets import TicketStatus

from infra.cli_api import Listing, api_page, collect, direct_page, show_ticket
from infra.cli_core import LIST_FIELDS, CliError, StackOptions, stack_command, ticket_row
from infra.cli_output import emit
from infra.cli_owners import my_devices
from infra.cli_session import api_client_for
from infra.stores import diagnostics_store_of, registry_of, store_of

PAGE_DEFAULT = 100  # one page of `tickets list` unless --limit
TicketId = Annotated[str, typer.Argument(show_default=False)]

tickets_app = typer.Typer(help="service tickets")
devices_app = typer.Typer(help="the device registry")
catalog_app = typer.Typer(help="the fault catalog")


@devices_app.command("list")
@stack_command
def devices_list(
    mine: Annotated[
        bool, typer.Option(help="the logged-in customer's devices (warranty, open tickets)")
    ] = False,
    *,
    opts: StackOptions,
) -> None:
    """List registered devices (`--mine`: yours, through the API)."""
    if mine:
        my_devices(opts)
        return
    devices = registry_of(opts.target()).list_devices()
    rows = [{k: d.get(k) for k in LIST_FIELDS["devices"]} for d in devices]
    emit(rows, opts.json, LIST_FIELDS["devices"])


@tickets_app.command("list")
@stack_command
def tickets_list(
    status: TicketStatus | None = None,
    thing: str | None = None,
    limit: Annotated[int | None, typer.Option(help="tickets per page, 1-200 (default 100)")] = None,
    cursor: Annotated[
        str | None, typer.Option(help="start where the previous page ended (see stderr)")
    ] = None,
    follow: Annotated[bool, typer.Option("--all", help="follow the cursor to the end")] = False,
    *,
    opts: StackOptions,
) -> None:
    """List tickets, newest first, a page at a time (`--all` follows the cursor to the end).

    Logged in to the stack: through the API with that user's rights; otherwise straight from
    DynamoDB. stdout stays one JSON array with `--json`; the cursor of the next page, when
    there is one, goes to stderr."""
    limit = limit if limit is not None else MAX_PAGE if follow else PAGE_DEFAULT
    if not 1 <= limit <= MAX_PAGE:
        raise CliError(f"--limit must be between 1 and {MAX_PAGE}")
    listing = Listing(status.value if status else None, thing, limit, cursor, follow)
    if (api := api_client_for(opts)) is not None:
        rows, cursor = collect(lambda c: api_page(api, listing, c), listing)
    else:
        store = store_of(opts.target())
        rows, cursor = collect(lambda c: direct_page(store, listing, c), listing)
    emit(rows, opts.json, LIST_FIELDS["tickets"])
    if cursor:
        print(f"more tickets: --cursor {cursor} (or --all)", file=sys.stderr)


@tickets_app.command("show")
@stack_command
def tickets_show(ticket_id: TicketId, *, opts: StackOptions) -> None:
    """One ticket with occurrences, timeline, diagnostics and cost estimate (the API's view)."""
    if (api := api_client_for(opts)) is not None:  # logged in: the API, with that user's rights
        emit(show_ticket(api, ticket_id), True)
        return
    target = opts.target()
    detail = store_of(target).get_ticket(ticket_id)
    diagnostics = diagnostics_store_of(target).for_ticket(ticket_id)
    emit(ticket_view(detail, diagnostics).model_dump(mode="json"), True)


@tickets_app.command("set-status")
@stack_command
def tickets_set_status(
    ticket_id: TicketId,
    status: Annotated[TicketStatus, typer.Argument(show_default=False)],
    reason: Annotated[str, typer.Option(show_default=False)],
    actor: str = "engineer-cli",
    *,
    opts: StackOptions,
) -> None:
    """Move a ticket (state machine)."""
    ticket = change_status(
        store_of(opts.target()),
        ticket_id,
        status,
        actor=actor,
        reason=reason,
        now=datetime.now(UTC),
    )
    emit(ticket_row(ticket), opts.json, LIST_FIELDS["tickets"])


@catalog_app.command("list")
@stack_command
def catalog_list(*, opts: StackOptions) -> None:
    """Fault codes and what they imply."""
    rows = [
        {
            "code": e.code,
            "title_en": e.title_en,
            "title_zh": e.title_zh,
            "severity": e.severity.value,
            "category": e.category,
            "models": list(e.models),
            "parts": [p.model_dump() for p in e.parts],
            "routine": e.routine,
            "remote_fixable": e.remote_fixable,
            "auto_diagnose": e.auto_diagnose,
        }
        for e in load_catalog().codes.values()
    ]
    emit(rows, opts.json, ["code", "severity", "routine", "remote_fixable", "title_en"])
