"""`aftercare dlq list|replay`: parked (rejected or dead-lettered) messages."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from aftercare.adapters.parked import DynamoParkedStore
from aftercare.domain.replay import ReplaySkip, plan_replay, replay_event
from botocore.exceptions import BotoCoreError, ClientError

from infra.cli_core import LIST_FIELDS, StackOptions, stack_command
from infra.cli_output import emit
from infra.stores import parked_store_of
from infra.target import Target

dlq_app = typer.Typer(help="parked (rejected or dead-lettered) messages")


@dlq_app.command("list")
@stack_command
def dlq_list(reason: str | None = None, *, opts: StackOptions) -> None:
    """What was parked, with reasons."""
    parked = parked_store_of(opts.target()).list()
    rows = [{k: p.get(k) for k in LIST_FIELDS["dlq"]} for p in parked]
    if reason:
        rows = [r for r in rows if str(r["reason"]).startswith(reason)]
    emit(rows, opts.json, ["source", "reason", "received_at", "thing", "detail"])


@dlq_app.command("replay")
@stack_command
def dlq_replay(
    keys: Annotated[
        list[str] | None, typer.Argument(help="parked_key values to replay", show_default=False)
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every replayable, not yet replayed")
    ] = False,
    by: Annotated[
        str | None, typer.Option(help="who replays (history; default: you)", show_default=False)
    ] = None,
    *,
    opts: StackOptions,
) -> None:
    """Re-deliver parked messages to where they came from, when a replay can fix them.

    Faults go to the fault queue, diagnostics answers to the diagnostics result queue (queue
    URLs from the target's resources, so `--aws` works too). Reasons a replay cannot fix
    (schema violations, spoofed or late answers, ...) are skipped and printed with why. The
    parked item stays, with its replay history (when, by whom, outcome, count); `--all` leaves
    items that were replayed before, name their keys to replay them again."""
    target = opts.target()
    store = parked_store_of(target, with_bucket=True)
    wanted = set(keys or [])
    replayer = by or getpass.getuser()
    rows = [
        _replay_one(target, store, item, explicit=not every, by=replayer)
        for item in store.list()
        if every or item.get("parked_key") in wanted
    ]
    emit(rows, opts.json, ["outcome", "source", "reason", "parked_key", "why"])


def _with_envelope(store: DynamoParkedStore, item: dict[str, Any]) -> dict[str, Any]:
    if not item.get("envelope_ref") or item.get("envelope"):
        return item
    try:  # kept in the ParkedPayloadBucket: too big for the item
        return {**item, "envelope": store.kept_envelope(str(item["envelope_ref"]))}
    except (BotoCoreError, ClientError) as exc:
        return {**item, "envelope_omitted": f"{item['envelope_ref']} unreadable: {exc}"}


def _replay_one(
    target: Target, store: DynamoParkedStore, item: dict[str, Any], *, explicit: bool, by: str
) -> dict[str, Any]:
    item = _with_envelope(store, item)
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
