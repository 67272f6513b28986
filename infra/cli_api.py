"""`aftercare login` and `aftercare diag …`: the engineer CLI through the support HTTP API.

Also the paging that `tickets list` shares between the API and a direct read of the table.
Sessions and the API client live in `infra.cli_session`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import typer
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.domain.paging import InvalidCursor, TicketQuery, decode_cursor, encode_cursor

from infra.cli_core import LIST_FIELDS, CliError, StackOptions, stack_command, ticket_row
from infra.cli_output import emit
from infra.cli_session import ApiClient, login, required_client, session_path
from infra.local.provision_api import LOCAL_PASSWORD

POLL_INTERVAL_S = 0.25
NEXT_CURSOR_HEADER = "X-Next-Cursor"
IdArg = Annotated[str, typer.Argument(show_default=False)]


# --------------------------------------------------------------------------- paging


@dataclass(frozen=True)
class Listing:
    """What `tickets list` asks for: filters, page size, where to start, whether to follow."""

    status: str | None
    thing: str | None
    limit: int
    cursor: str | None
    follow: bool


Page = tuple[list[dict[str, Any]], str | None]


def api_page(client: ApiClient, listing: Listing, cursor: str | None) -> Page:
    """One page through the API (with the logged-in user's rights) and the next cursor."""
    rows, headers = client.get_with_headers(
        "/tickets", status=listing.status, thing=listing.thing, limit=listing.limit, cursor=cursor
    )
    picked = [{k: row.get(k) for k in LIST_FIELDS["tickets"]} for row in rows]
    return picked, headers.get(NEXT_CURSOR_HEADER.lower())


def direct_page(store: DynamoTicketStore, listing: Listing, cursor: str | None) -> Page:
    """One page read from DynamoDB directly (every ticket), with the API's cursor format."""
    try:
        after = (
            decode_cursor(cursor, status=listing.status, thing=listing.thing) if cursor else None
        )
    except InvalidCursor as exc:
        raise CliError(f"invalid_cursor: {exc}") from exc
    things = (listing.thing,) if listing.thing else None
    page = store.page_tickets(
        TicketQuery(status=listing.status, things=things, after=after, limit=listing.limit)
    )
    following = page.next_after and encode_cursor(
        page.next_after, status=listing.status, thing=listing.thing
    )
    return [ticket_row(t) for t in page.tickets], following or None


def collect(page_of: Callable[[str | None], Page], listing: Listing) -> Page:
    """One page, or with `follow` every page from `listing.cursor` on."""
    rows, cursor = page_of(listing.cursor)
    while listing.follow and cursor:
        more, cursor = page_of(cursor)
        rows += more
    return rows, cursor


def show_ticket(client: ApiClient, ticket_id: str) -> dict[str, Any]:
    """The same document as the direct `tickets show` (both are `ticket_view`)."""
    return dict(client.get(f"/tickets/{quote(ticket_id, safe='')}"))


# --------------------------------------------------------------------------- login


@stack_command
def login_command(
    user: Annotated[str, typer.Option(help="e.g. eng-ada, mgr-grace, cust-0001")],
    password: Annotated[
        str | None,
        typer.Option(help="default: $AFTERCARE_PASSWORD, else the local seeded users' password"),
    ] = None,
    new_password: Annotated[
        str | None, typer.Option(help="the permanent password to set when Cognito asks for one")
    ] = None,
    *,
    opts: StackOptions,
) -> None:
    """Log in to a stack's support API (local seeded users share the documented password)."""
    password = password or os.environ.get("AFTERCARE_PASSWORD")
    if password is None and opts.aws:
        raise CliError("pass --password or set AFTERCARE_PASSWORD")
    target = opts.target()
    session = login(target, session_path(opts), user, password or LOCAL_PASSWORD, new_password)
    shown = {k: session[k] for k in ("user", "groups", "customer_id", "expires_at")}
    if opts.json:
        emit(shown, True)
        return
    groups = ", ".join(session["groups"]) or "no groups"
    owner = f" (customer {session['customer_id']})" if session["customer_id"] else ""
    print(f"logged in as {session['user']}: {groups}{owner}")


# --------------------------------------------------------------------------- diag

diag_app = typer.Typer(help="remote diagnostics (through the API)", no_args_is_help=False)


def _progress(record: dict[str, Any], started: float) -> None:
    print(
        f"  {time.monotonic() - started:5.1f}s  {record['request_id']}  {record['status']}",
        file=sys.stderr,
        flush=True,
    )


def wait_for(client: ApiClient, request_id: str, limit_s: float) -> dict[str, Any]:
    """Poll a diagnostic until it leaves `pending` (or `limit_s` passes)."""
    started = time.monotonic()
    record = client.get(f"/diagnostics/{quote(request_id, safe='')}")
    while record["status"] == "pending" and time.monotonic() - started < limit_s:
        _progress(record, started)
        time.sleep(POLL_INTERVAL_S)
        record = client.get(f"/diagnostics/{quote(request_id, safe='')}")
    _progress(record, started)
    return dict(record)


def _diag_row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": record["request_id"],
        "status": record["status"],
        "result": {
            **(record.get("result") or {}),
            "routine": record["routine"],
            "outcome": record.get("outcome"),
            "latency_ms": record.get("latency_ms"),
        }
        if record.get("result")
        else None,
    }


def _param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise typer.BadParameter(f"expected NAME=VALUE, got {text!r}", param_hint="--param")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


@diag_app.command("run")
@stack_command
def diag_run(
    ticket_id: IdArg,
    routine: Annotated[
        str | None, typer.Option(help="default: the ticket's routine from the catalog")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME=VALUE", help="a routine parameter (repeatable)"),
    ] = None,
    timeout: Annotated[int | None, typer.Option(help="seconds the device has to answer")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for the answer, showing progress")] = (
        False
    ),
    *,
    opts: StackOptions,
) -> None:
    """Run a diagnostic routine on a ticket's device; with --wait, until it answers."""
    client = required_client(opts)
    body: dict[str, Any] = {}
    if routine:
        body["routine"] = routine
    if timeout:
        body["timeout_s"] = timeout
    if param:
        body["params"] = dict(_param(text) for text in param)
    record = client.post(f"/tickets/{quote(ticket_id, safe='')}/diagnostics", body)
    if wait:
        record = wait_for(client, record["request_id"], (timeout or 300) + 10)
    row = _diag_row(record)
    if opts.json:
        emit(row, True)
        return
    print(f"{row['request_id']}: {row['status']}")
    if row["result"]:
        emit(row["result"], False)


@diag_app.command("show")
@stack_command
def diag_show(request_id: IdArg, *, opts: StackOptions) -> None:
    """One diagnostic's status and result."""
    record = required_client(opts).get(f"/diagnostics/{quote(request_id, safe='')}")
    emit(record, True)


@diag_app.command("list")
@stack_command
def diag_list(ticket_id: IdArg, *, opts: StackOptions) -> None:
    """The diagnostics of a ticket."""
    listing = required_client(opts).get(f"/tickets/{quote(ticket_id, safe='')}/diagnostics")
    rows = [
        {
            "request_id": r["request_id"],
            "routine": r["routine"],
            "purpose": r["purpose"],
            "status": r["status"],
            "outcome": r.get("outcome"),
            "latency_ms": r.get("latency_ms"),
            "requested_at": r["requested_at"],
        }
        for r in listing["diagnostics"]
    ]
    emit(rows, opts.json, ["request_id", "routine", "purpose", "status", "outcome", "latency_ms"])
