"""`aftercare` — the engineer CLI: local stack, devices, tickets, parked messages, demo."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aftercare.adapters.aws import from_item
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.parked import DynamoParkedStore
from aftercare.domain.lifecycle import change_status
from aftercare.domain.parts import InvalidLineChange, OutOfStock
from aftercare.domain.ports import ConcurrentUpdate, TicketNotFound
from aftercare.domain.replay import ReplaySkip, plan_replay, replay_event
from aftercare.domain.rules import load_catalog
from aftercare.domain.stock import PartsError
from aftercare.domain.tickets import InvalidTransition, Ticket, TicketStatus
from botocore.exceptions import BotoCoreError, ClientError

from infra.target import Target, TargetError, resolve_target

LIST_FIELDS = {
    "devices": ["thing", "serial", "model", "customer_id", "region", "warranty_until"],
    "tickets": [
        "ticket_id",
        "thing",
        "fault_code",
        "status",
        "priority",
        "occurrences",
        "repeat_of",
        "opened_at",
    ],
    "dlq": [
        "source",
        "reason",
        "received_at",
        "payload",
        "detail",
        "thing",
        "parked_key",
        "payload_bytes",
        "payload_sha256",
        "envelope_ref",
        "replay_count",
        "replayed_at",
        "replayed_by",
        "replay_outcome",
    ],
}


class CliError(RuntimeError):
    """A failure reported as one line on stderr with a non-zero exit."""


def emit(rows: Any, as_json: bool, columns: Sequence[str] | None = None) -> None:
    if as_json:
        json.dump(rows, sys.stdout, indent=2, default=str, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if isinstance(rows, dict):
        json.dump(rows, sys.stdout, indent=2, default=str, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    cols = list(columns or (rows[0].keys() if rows else []))
    print("  ".join(cols))
    for row in rows:
        print("  ".join(_cell(row.get(c)) for c in cols))
    print(f"({len(rows)} rows)")


def _cell(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def target_of(args: argparse.Namespace) -> Target:
    return resolve_target(
        aws=args.aws,
        stage=args.stage,
        state_dir=args.state_dir,
        stack_name=getattr(args, "stack_name", None),
        region=getattr(args, "aws_region", None),
    )


def store_of(target: Target) -> DynamoTicketStore:
    return DynamoTicketStore(
        tickets_table=target.resource("TicketsTable"),
        devices_table=target.resource("DevicesTable"),
        customers_table=target.resource("CustomersTable"),
        inventory_table=target.resources.get("InventoryTable"),
        ddb=target.client("dynamodb"),
    )


# --------------------------------------------------------------------------- commands


def cmd_devices_list(args: argparse.Namespace) -> None:
    target = target_of(args)
    pages = (
        target.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=target.resource("DevicesTable"))
    )
    devices = [from_item(i) for page in pages for i in page.get("Items", [])]
    rows = [{k: d.get(k) for k in LIST_FIELDS["devices"]} for d in devices]
    emit(sorted(rows, key=lambda r: r["thing"]), args.json, LIST_FIELDS["devices"])


def ticket_row(ticket: Ticket) -> dict[str, Any]:
    data = ticket.model_dump(mode="json")
    return {k: data.get(k) for k in LIST_FIELDS["tickets"]}


def cmd_tickets_list(args: argparse.Namespace) -> None:
    from infra.cli_api import cmd_tickets_list as list_tickets  # paging lives with the API client

    list_tickets(args)


def cmd_tickets_show(args: argparse.Namespace) -> None:
    from infra.cli_api import api_client_for, show_ticket

    if (api := api_client_for(args)) is not None:  # logged in: the API, with that user's rights
        emit(show_ticket(api, args.ticket_id), True)
        return
    detail = store_of(target_of(args)).get_ticket(args.ticket_id)
    emit(
        {
            **detail.ticket.model_dump(mode="json"),
            "occurrence_history": [o.model_dump(mode="json") for o in detail.occurrences],
            "timeline": [e.model_dump(mode="json") for e in detail.timeline],
        },
        True,
    )


def cmd_tickets_set_status(args: argparse.Namespace) -> None:
    ticket = change_status(
        store_of(target_of(args)),
        args.ticket_id,
        TicketStatus(args.status),
        actor=args.actor,
        reason=args.reason,
        now=datetime.now(UTC),
    )
    emit(ticket_row(ticket), args.json, LIST_FIELDS["tickets"])


def cmd_dlq_list(args: argparse.Namespace) -> None:
    target = target_of(args)
    parked = DynamoParkedStore(
        table=target.resource("ParkedTable"), ddb=target.client("dynamodb")
    ).list()
    rows = [{k: p.get(k) for k in LIST_FIELDS["dlq"]} for p in parked]
    if args.reason:
        rows = [r for r in rows if str(r["reason"]).startswith(args.reason)]
    emit(rows, args.json, ["source", "reason", "received_at", "thing", "detail"])


def cmd_dlq_replay(args: argparse.Namespace) -> None:
    """Send parked messages back to the queue they came from, when a replay can fix them.

    Faults go to the fault queue, diagnostics answers to the diagnostics result queue (queue
    URLs from the target's resources, so `--aws` works too). Reasons a replay cannot fix
    (schema violations, spoofed or late answers, ...) are skipped and printed with why. The
    parked item stays, with its replay history (when, by whom, outcome, count); `--all` leaves
    items that were replayed before, name their keys to replay them again."""
    target = target_of(args)
    store = DynamoParkedStore(
        table=target.resource("ParkedTable"), ddb=target.client("dynamodb"), s3=target.client("s3")
    )
    rows = []
    for item in store.list():
        if not (args.all or item.get("parked_key") in args.keys):
            continue
        rows.append(_replay_one(target, store, item, explicit=not args.all, by=args.by))
    emit(rows, args.json, ["outcome", "source", "reason", "parked_key", "why"])


def _replay_one(
    target: Target, store: DynamoParkedStore, item: dict[str, Any], *, explicit: bool, by: str
) -> dict[str, Any]:
    if item.get("envelope_ref") and not item.get("envelope"):
        try:  # kept in the ParkedPayloadBucket: too big for the item
            item = {**item, "envelope": store.kept_envelope(str(item["envelope_ref"]))}
        except (BotoCoreError, ClientError) as exc:
            item = {**item, "envelope_omitted": f"{item['envelope_ref']} unreadable: {exc}"}
    plan = plan_replay(item)
    row = {"source": item["source"], "parked_key": item["parked_key"], "reason": item["reason"]}
    if isinstance(plan, ReplaySkip):
        return {**row, "outcome": "skipped", "why": plan.why}
    if item.get("replay_count") and not explicit:
        why = f"replayed before ({item.get('replayed_at')}); name its key to replay it again"
        return {**row, "outcome": "skipped", "why": why}
    now = datetime.now(UTC)
    try:
        sent = target.client("sqs").send_message(
            QueueUrl=target.queue_url(plan.queue), MessageBody=plan.body
        )
    except (BotoCoreError, ClientError) as exc:
        store.record_replay(plan.source, plan.parked_key, replay_event(by, f"failed: {exc}", now))
        return {**row, "outcome": "failed", "why": str(exc)}
    event = replay_event(by, f"sent to {plan.queue}", now, sent.get("MessageId"))
    store.record_replay(plan.source, plan.parked_key, event)
    return {**row, "outcome": "replayed", "queue": plan.queue, "why": ""}


def cmd_catalog_list(args: argparse.Namespace) -> None:
    catalog = load_catalog()
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
        for e in catalog.codes.values()
    ]
    emit(rows, args.json, ["code", "severity", "routine", "remote_fixable", "title_en"])


# --------------------------------------------------------------------------- parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--aws", action="store_true", help="talk to a deployed stack in AWS")
    parser.add_argument("--stage", default="prod", help="deployed stage (with --aws)")
    parser.add_argument("--state-dir", type=Path, default=None, help="local stack state dir")
    parser.add_argument("--stack-name", help="deployed stack (with --aws; default aftercare-STAGE)")
    parser.add_argument(
        "--aws-region", help="AWS region of the deployed stack (default: the AWS config's)"
    )


def _add(
    group: Any, name: str, func: Callable[[argparse.Namespace], None], help_text: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text)
    _common(parser)
    parser.set_defaults(func=func)
    return parser


def _engineer_commands(sub: Any) -> None:
    devices = sub.add_parser("devices", help="the device registry").add_subparsers(required=True)
    _add(devices, "list", cmd_devices_list, "list registered devices")
    from infra.cli_admin import register_devices

    register_devices(devices)

    tickets = sub.add_parser("tickets", help="service tickets").add_subparsers(required=True)
    listing = _add(tickets, "list", cmd_tickets_list, "list tickets, newest first")
    listing.add_argument("--status", choices=[s.value for s in TicketStatus])
    listing.add_argument("--thing")
    listing.add_argument("--limit", type=int, help="tickets per page, 1-200 (default 100)")
    listing.add_argument("--cursor", help="start where the previous page ended (see stderr)")
    listing.add_argument("--all", action="store_true", help="follow the cursor to the end")
    _add(
        tickets, "show", cmd_tickets_show, "one ticket with occurrences and timeline"
    ).add_argument("ticket_id")
    setter = _add(tickets, "set-status", cmd_tickets_set_status, "move a ticket (state machine)")
    setter.add_argument("ticket_id")
    setter.add_argument("status", choices=[s.value for s in TicketStatus])
    setter.add_argument("--reason", required=True)
    setter.add_argument("--actor", default="engineer-cli")

    dlq = sub.add_parser("dlq", help="parked (rejected or dead-lettered) messages")
    dlq_sub = dlq.add_subparsers(required=True)
    _add(dlq_sub, "list", cmd_dlq_list, "what was parked, with reasons").add_argument("--reason")
    replay = _add(
        dlq_sub, "replay", cmd_dlq_replay, "re-deliver parked messages to where they came from"
    )
    replay.add_argument("keys", nargs="*", help="parked_key values to replay")
    replay.add_argument("--all", action="store_true", help="every replayable, not yet replayed")
    replay.add_argument("--by", default=getpass.getuser(), help="who replays (history)")

    catalog = sub.add_parser("catalog", help="the fault catalog").add_subparsers(required=True)
    _add(catalog, "list", cmd_catalog_list, "fault codes and what they imply")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aftercare", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _engineer_commands(sub)
    from devices.cli import register as register_device
    from infra.cli_admin import register as register_admin
    from infra.cli_api import register as register_api
    from infra.cli_notifications import register as register_notifications
    from infra.cli_parts import register as register_parts
    from infra.demo import register as register_demo
    from infra.local.cli import register as register_local

    register_local(sub)
    register_api(sub)
    register_device(sub)
    register_demo(sub)
    register_parts(sub)
    register_notifications(sub)
    register_admin(sub)
    return parser


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
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except KNOWN_FAILURES as exc:
        print(f"aftercare: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
