"""`aftercare jobs …`: a logged-in field engineer works through their visits (through the API).

    aftercare jobs list [--date D] [--engineer E] --json
    aftercare jobs set-status B-… on_site [--reason R] [--notes N] [--part SKU …] [--version V]

Without `--version` the booking's current version is read from today's job list first (the
API still refuses the change with `stale_version` when it moved on in between).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import ApiClient, required_client

jobs_app = typer.Typer(help="a field engineer's visits (through the API)", no_args_is_help=False)

JOB_COLUMNS = ["booking_id", "ticket_id", "start", "end", "status", "fault_code", "thing"]
STATUSES = ("en_route", "on_site", "completed", "cannot_complete")


@jobs_app.command("list")
@stack_command
def jobs_list(
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default today, UTC)")] = None,
    engineer: Annotated[str | None, typer.Option(help="managers: whose jobs")] = None,
    *,
    opts: StackOptions,
) -> None:
    """The logged-in engineer's jobs of the day, earliest first."""
    rows = required_client(opts).get("/me/jobs", date=date, engineer_id=engineer)
    emit(rows, opts.json, JOB_COLUMNS)


def _current_version(client: ApiClient, booking_id: str) -> int:
    for row in client.get("/me/jobs"):
        if row["booking_id"] == booking_id:
            return int(row["version"])
    raise CliError(f"{booking_id} is not among today's jobs: pass --version")


@jobs_app.command("set-status")
@stack_command
def jobs_set_status(
    booking_id: Annotated[str, typer.Argument(show_default=False)],
    status: Annotated[str, typer.Argument(help=" | ".join(STATUSES), show_default=False)],
    *,
    reason: Annotated[str | None, typer.Option(help="required for cannot_complete")] = None,
    notes: str | None = None,
    part: Annotated[
        list[str] | None, typer.Option(help="a SKU used (repeatable; completed)")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="the booking version you saw (default: read it now)")
    ] = None,
    opts: StackOptions,
) -> None:
    """Report a visit's progress: en_route, on_site, completed or cannot_complete."""
    if status not in STATUSES:
        raise typer.BadParameter(f"one of {', '.join(STATUSES)}", param_hint="STATUS")
    client = required_client(opts)
    body: dict[str, Any] = {
        "status": status,
        "expected_version": version
        if version is not None
        else _current_version(client, booking_id),
    }
    for key, value in (("reason", reason), ("notes", notes), ("parts_used", part)):
        if value is not None:
            body[key] = value
    result = client.post(f"/bookings/{quote(booking_id, safe='')}/status", body)
    if opts.json:
        emit(result, True)
        return
    booking = result["booking"]
    print(f"{booking['booking_id']}: {booking['status']} (version {booking['version']})")
    if result.get("verification_request"):
        print(f"verification {result['verification_request']} sent to {booking['thing']}")
