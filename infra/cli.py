"""`aftercare` — the engineer CLI: local stack, devices, tickets, parked messages, demo.

This module only assembles the command groups (each in its own `infra.cli_*` module) and
turns known failures into one line on stderr and an exit code. Imports go one way: from here
to the command modules, from those to `infra.cli_core`, `infra.cli_output` and `infra.stores`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from aftercare.domain.parts import InvalidLineChange, OutOfStock
from aftercare.domain.ports import ConcurrentUpdate, TicketNotFound
from aftercare.domain.stock import PartsError
from aftercare.domain.tickets import InvalidTransition
from botocore.exceptions import BotoCoreError, ClientError

from infra import cli_owners, cli_passthrough
from infra.admin.provision import ProvisionError
from infra.admin.users import UserError
from infra.cli_admin import admin_app, devices_provision, smoke
from infra.cli_advice import advice_app
from infra.cli_api import diag_app, login_command
from infra.cli_core import CliError, stack_command
from infra.cli_dispatch import dispatch_app, tickets_dispatch
from infra.cli_dlq import dlq_app
from infra.cli_field import bookings_app, engineers_app, tickets_book, tickets_slots
from infra.cli_guides import assist, guides_app
from infra.cli_health import devices_health
from infra.cli_incidents import incidents_app
from infra.cli_jobs import jobs_app
from infra.cli_kpis import kpis_command
from infra.cli_notifications import followups_app, notifications_app, surveys_app
from infra.cli_parts import parts_app
from infra.cli_raised import symptoms_app, tasks_app, tickets_classify, tickets_create
from infra.cli_tickets import catalog_app, devices_app, tickets_app
from infra.demo import demo
from infra.seeding import SeedDataError
from infra.target import TargetError

KNOWN_FAILURES = (
    PartsError,
    OutOfStock,
    InvalidLineChange,
    CliError,
    TargetError,
    TicketNotFound,
    InvalidTransition,
    ConcurrentUpdate,
    ClientError,
    BotoCoreError,
    SeedDataError,
    UserError,
    ProvisionError,
)
BROKEN_PIPE_EXIT = 141  # what a shell reports for a writer killed by SIGPIPE
INTERRUPTED_EXIT = 130

app = typer.Typer(
    name="aftercare",
    help=(__doc__ or "").split("\n\n", 1)[0],
    add_completion=False,
    pretty_exceptions_enable=False,
)
devices_app.command("provision")(devices_provision)
cli_owners.install(devices_app)
devices_app.command("health")(devices_health)
cli_passthrough.add_local(app)
app.command("demo")(demo)
cli_passthrough.add_device(app)
for group, name in (
    (devices_app, "devices"),
    (tickets_app, "tickets"),
    (dlq_app, "dlq"),
    (catalog_app, "catalog"),
):
    app.add_typer(group, name=name)
app.command("login", help="log in to a stack's support API")(login_command)
for group, name in (
    (diag_app, "diag"),
    (parts_app, "parts"),
    (notifications_app, "notifications"),
    (surveys_app, "surveys"),
    (followups_app, "followups"),
    (admin_app, "admin"),
    (jobs_app, "jobs"),
):
    app.add_typer(group, name=name)
app.command("smoke")(smoke)
# Field service (infra/cli_field.py): the directory, offered slots, bookings.
tickets_app.command("slots")(stack_command(tickets_slots))
tickets_app.command("book")(stack_command(tickets_book))
app.add_typer(engineers_app, name="engineers")
app.add_typer(bookings_app, name="bookings")
# Field dispatch (issue 12): an engineer asks for a visit; the board and manual assignment.
tickets_app.command("dispatch")(tickets_dispatch)
app.add_typer(dispatch_app, name="dispatch")
# Raised tickets (issue 13): customers and agents, every channel; classify; callback tasks.
tickets_app.command("create")(stack_command(tickets_create))
tickets_app.command("classify")(stack_command(tickets_classify))
app.add_typer(symptoms_app, name="symptoms")
app.add_typer(tasks_app, name="tasks")
# Service KPIs (issue 14).
app.command("kpis")(kpis_command)
app.add_typer(incidents_app, name="incidents")
# Guides the device confirms and the answer service (issue 13).
app.add_typer(guides_app, name="guides")
app.command("assist")(stack_command(assist))
# Maintenance advice from telemetry (issue 13): a customer's devices, or one device for staff.
app.add_typer(advice_app, name="advice")


def invoke(argv: Sequence[str] | None = None) -> Any:
    """Parse `argv` and run the command, letting every exception through (tests, `main`)."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    with command.make_context("aftercare", args) as ctx:
        return command.invoke(ctx)


def main(argv: Sequence[str] | None = None) -> int:
    """The `aftercare` entry point: the command's exit code, 1 for a known failure (one line
    on stderr), 2 for a usage error."""
    try:
        code = invoke(argv)
    except typer.Exit as exc:  # --help, or a command's own typer.Exit
        return int(exc.exit_code)
    except typer.TyperException as exc:  # a usage error: the parser's message, exit 2
        _show(exc)
        return int(exc.exit_code)
    except KNOWN_FAILURES as exc:
        print(f"aftercare: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, typer.Abort):
        return INTERRUPTED_EXIT
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    return code if isinstance(code, int) else 0


def _show(exc: typer.TyperException) -> None:
    show = getattr(exc, "show", None)  # usage errors print the usage line too
    if callable(show):
        show()
    else:
        print(f"Error: {exc.format_message()}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
