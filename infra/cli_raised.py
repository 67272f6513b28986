"""`aftercare tickets create|classify`, `aftercare symptoms list`, `aftercare tasks list|done`:
tickets people raise, through the support API with the logged-in user's rights (a customer for
their own devices through app/web; an agent for a customer through any channel)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

import typer

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import required_client

symptoms_app = typer.Typer(help="the symptom list customers choose from")
tasks_app = typer.Typer(help="staff tasks tickets create (VIP callbacks)")
IdArg = Annotated[str, typer.Argument(show_default=False)]
RAISED_FIELDS = ["outcome", "ticket_id", "fault_code", "status", "priority", "channel", "raised_by"]
SYMPTOM_FIELDS = ["code", "name", "category", "severity"]
TASK_FIELDS = ["task_id", "kind", "ticket_id", "customer_id", "channel", "due_at", "task_status"]


def tickets_create(
    *,
    device: Annotated[str, typer.Option("--device", "--thing", help="the device's thing name")],
    channel: Annotated[str, typer.Option(help="app|web (customers); phone|chat|email|onsite")],
    symptom: Annotated[
        str | None, typer.Option("--symptom", "--code", help="a code from `symptoms list`")
    ] = None,
    text: Annotated[str | None, typer.Option(help="free text: an unclassified ticket")] = None,
    description: Annotated[str | None, typer.Option(help="more detail")] = None,
    for_customer: Annotated[str | None, typer.Option(help="agents: the customer")] = None,
    contact: Annotated[str | None, typer.Option(help="preferred contact")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="reuse to retry safely (default: a new key per run)")
    ] = None,
    opts: StackOptions,
) -> None:
    """Raise a ticket for a device (or add the report to its active ticket for that code)."""
    if (symptom is None) == (text is None):
        raise CliError("give exactly one of --symptom CODE or --text TEXT")
    body: dict[str, Any] = {"device": device, "symptom": symptom or text, "channel": channel}
    extras = {
        "description": description,
        "for_customer": for_customer,
        "preferred_contact": contact,
    }
    body |= {k: v for k, v in extras.items() if v is not None}
    key = idempotency_key or f"cli-{uuid.uuid4().hex}"
    raised = required_client(opts).post("/tickets", body, headers={"Idempotency-Key": key})
    _one(raised, opts)


def tickets_classify(
    ticket_id: IdArg,
    code: Annotated[str, typer.Option(help="the catalog code (staff)")],
    *,
    opts: StackOptions,
) -> None:
    """Give an unclassified ticket a catalog code: parts are reserved, its routine runs."""
    ticket = required_client(opts).post(
        f"/tickets/{quote(ticket_id, safe='')}/classify", {"code": code}
    )
    _one({"outcome": "classified", **ticket}, opts)


def _one(raised: dict[str, Any], opts: StackOptions) -> None:
    ticket = raised.get("ticket") or raised
    row = {**ticket, "outcome": raised.get("outcome"), "ticket_id": ticket.get("ticket_id")}
    if opts.json:
        emit({**raised, "ticket_id": row["ticket_id"]}, True)
    else:
        emit([row], False, RAISED_FIELDS)


@symptoms_app.command("list")
@stack_command
def symptoms_list(
    lang: Annotated[str, typer.Option(help="en or zh-CN")] = "en",
    model: Annotated[str | None, typer.Option(help="only symptoms of MODEL")] = None,
    *,
    opts: StackOptions,
) -> None:
    """The symptom list customers choose from, named in LANG."""
    emit(required_client(opts).get("/symptoms", lang=lang, model=model), opts.json, SYMPTOM_FIELDS)


@tasks_app.command("list")
@stack_command
def tasks_list(
    status: Annotated[str | None, typer.Option(help="open or done")] = None,
    *,
    opts: StackOptions,
) -> None:
    """Staff tasks (VIP callbacks), oldest due first."""
    emit(required_client(opts).get("/tasks", status=status), opts.json, TASK_FIELDS)


@tasks_app.command("done")
@stack_command
def tasks_done(
    task_id: IdArg,
    note: Annotated[str | None, typer.Option(help="what was agreed")] = None,
    *,
    opts: StackOptions,
) -> None:
    """Mark a task done; its ticket's timeline records it."""
    body = {"note": note} if note else {}
    task = required_client(opts).post(f"/tasks/{quote(task_id, safe='')}/done", body)
    emit(task if opts.json else [task], opts.json, TASK_FIELDS)
