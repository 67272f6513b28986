"""`aftercare engineers …`, `aftercare tickets slots|book` and `aftercare bookings …`: field
service from the command line. Booking goes through the support API with the logged-in user's
rights (a customer books their own tickets); the engineer list reads FieldTable directly when
nobody is logged in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.models.field_api import EngineerRow

from infra.cli_core import StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import api_client_for, required_client

engineers_app = typer.Typer(help="field engineers (in-house and partner)")
bookings_app = typer.Typer(help="booked visits")
IdArg = Annotated[str, typer.Argument(show_default=False)]
ENGINEER_FIELDS = ["engineer_id", "name", "kind", "partner", "regions", "time_zone"]
SLOT_FIELDS = ["slot_id", "local_start", "local_end", "engineer_id", "partner", "within_sla"]
BOOKING_FIELDS = ["booking_id", "ticket_id", "engineer_id", "start", "end", "status"]


def _q(value: str) -> str:
    return quote(value, safe="")


@engineers_app.command("list")
@stack_command
def engineers_list(
    region: Annotated[str | None, typer.Option(help="only engineers covering REGION")] = None,
    *,
    opts: StackOptions,
) -> None:
    """The engineer directory: through the API when logged in (staff), else from FieldTable."""
    if (api := api_client_for(opts)) is not None:
        rows = api.get("/engineers", region=region)
    else:
        target = opts.target()
        directory = DynamoEngineerDirectory(
            table=target.resource("FieldTable"), ddb=target.client("dynamodb")
        )
        engineers = sorted(directory.list_engineers(region), key=lambda e: e.engineer_id)
        rows = [EngineerRow.of(e).model_dump(mode="json") for e in engineers]
    emit(rows, opts.json, ENGINEER_FIELDS)


@engineers_app.command("put")
@stack_command
def engineers_put(
    engineer_id: IdArg,
    file: Annotated[Path, typer.Option(help="the engineer as JSON (the API's Engineer)")],
    *,
    opts: StackOptions,
) -> None:
    """Create or replace an engineer (managers, through the API)."""
    body = json.loads(file.read_text(encoding="utf-8"))
    emit(required_client(opts).put(f"/engineers/{_q(engineer_id)}", body), True)


def tickets_slots(ticket_id: IdArg, *, opts: StackOptions) -> None:
    """Visit windows offered for a ticket (each held briefly for it)."""
    rows: list[dict[str, Any]] = required_client(opts).get(f"/tickets/{_q(ticket_id)}/slots")
    emit(rows, opts.json, SLOT_FIELDS)


def tickets_book(
    ticket_id: IdArg,
    slot: Annotated[str, typer.Option(help="a slot id from `tickets slots`")],
    *,
    opts: StackOptions,
) -> None:
    """Book a visit in an offered slot (fails with slot_taken when someone else has it)."""
    booking = required_client(opts).post(f"/tickets/{_q(ticket_id)}/booking", {"slot_id": slot})
    _one(booking, opts)


@bookings_app.command("show")
@stack_command
def bookings_show(booking_id: IdArg, *, opts: StackOptions) -> None:
    """One booking."""
    emit(required_client(opts).get(f"/bookings/{_q(booking_id)}"), True)


@bookings_app.command("list")
@stack_command
def bookings_list(ticket_id: IdArg, *, opts: StackOptions) -> None:
    """A ticket's bookings."""
    emit(required_client(opts).get(f"/tickets/{_q(ticket_id)}/bookings"), opts.json, BOOKING_FIELDS)


@bookings_app.command("reschedule")
@stack_command
def bookings_reschedule(
    booking_id: IdArg,
    slot: Annotated[str, typer.Option(help="the new slot id")],
    reason: Annotated[str, typer.Option(show_default=False)],
    *,
    opts: StackOptions,
) -> None:
    """Move a booking to another slot (old window freed, new one taken, in one write)."""
    body = {"slot_id": slot, "reason": reason}
    _one(required_client(opts).post(f"/bookings/{_q(booking_id)}/reschedule", body), opts)


@bookings_app.command("cancel")
@stack_command
def bookings_cancel(
    booking_id: IdArg,
    reason: Annotated[str, typer.Option(show_default=False)],
    *,
    opts: StackOptions,
) -> None:
    """Cancel a booking with a reason."""
    _one(required_client(opts).post(f"/bookings/{_q(booking_id)}/cancel", {"reason": reason}), opts)


def _one(booking: dict[str, Any], opts: StackOptions) -> None:
    if opts.json:
        emit(booking, True)
        return
    print(f"{booking['booking_id']}: {booking['status']} {booking['start']} .. {booking['end']}")
