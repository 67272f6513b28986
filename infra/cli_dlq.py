"""`aftercare dlq list|replay`: parked (rejected or dead-lettered) messages."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer
from aftercare.adapters.parked import SqsRedelivery
from aftercare.domain.replay import replay_parked

from infra.cli_core import LIST_FIELDS, StackOptions, stack_command
from infra.cli_output import emit
from infra.stores import parked_store_of

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
    redelivery = SqsRedelivery(queue_url=target.queue_url, sqs=target.client("sqs"))
    wanted = set(keys or [])
    replayer = by or getpass.getuser()
    rows = [
        replay_parked(
            item, store, redelivery, explicit=not every, by=replayer, now=datetime.now(UTC)
        ).model_dump(exclude_none=True)
        for item in store.list()
        if every or item.get("parked_key") in wanted
    ]
    emit(rows, opts.json, ["outcome", "source", "reason", "parked_key", "why"])
