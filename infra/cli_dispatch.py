"""`aftercare tickets dispatch` and `aftercare dispatch board|assign`: the dispatch desk through
the support API (as the logged-in engineer or manager)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from infra.cli_core import StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import required_client

dispatch_app = typer.Typer(help="the dispatch board and manual assignment (managers)")
BOARD_FIELDS = ["booking_id", "ticket_id", "engineer_id", "start", "end", "status"]
IdArg = Annotated[str, typer.Argument(show_default=False)]


@stack_command
def tickets_dispatch(
    ticket_id: IdArg,
    reason: Annotated[str, typer.Option(help="why the ticket needs an on-site visit")],
    *,
    opts: StackOptions,
) -> None:
    """Say a ticket needs an on-site visit (engineers): the Dispatcher takes it from there."""
    answer = required_client(opts).post(
        f"/tickets/{quote(ticket_id, safe='')}/dispatch", {"reason": reason}
    )
    emit(answer, opts.json)


@dispatch_app.command("board")
@stack_command
def dispatch_board(
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD, default today (UTC)")] = None,
    region: Annotated[str | None, typer.Option(help="only this region")] = None,
    *,
    opts: StackOptions,
) -> None:
    """The day's bookings: [{booking_id, ticket_id, engineer_id, start, end, status}]."""
    rows = required_client(opts).get("/dispatch/board", date=date, region=region)
    emit([{k: row.get(k) for k in BOARD_FIELDS} for row in rows], opts.json, BOARD_FIELDS)


@dispatch_app.command("assign")
@stack_command
def dispatch_assign(
    ticket_id: IdArg,
    engineer: Annotated[str, typer.Option(help="engineer id, e.g. E-ada")],
    start: Annotated[str, typer.Option(help="ISO-8601 start with a UTC offset")],
    *,
    opts: StackOptions,
) -> None:
    """Book a ticket's visit on an engineer's calendar (managers); `slot_taken` on overlap.
    Prints the booking."""
    booking = required_client(opts).post(
        "/dispatch/assign", {"ticket_id": ticket_id, "engineer_id": engineer, "start": start}
    )
    emit(booking, opts.json)
