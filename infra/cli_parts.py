"""`aftercare parts …`: stock, reorder suggestions, low-stock events, manual holds/adjustments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from aftercare.adapters.inventory import DynamoInventoryWriter, InventoryReader, stock_from_item
from aftercare.domain.parts import ReorderPolicy, suggest_reorder
from aftercare.domain.stock import adjust_stock, release_part, reserve_part

from infra.cli_core import StackOptions, stack_command, ticket_row
from infra.cli_output import emit
from infra.stores import store_of

STOCK_FIELDS = ["sku", "warehouse", "on_hand", "held", "available", "reorder_point", "backordered"]
DEFAULT_HOLD_HOURS = 72
Positional = Annotated[str, typer.Argument(show_default=False)]
Reason = Annotated[str, typer.Option(show_default=False)]

parts_app = typer.Typer(help="spare parts and stock")


def _reader(opts: StackOptions) -> InventoryReader:
    target = opts.target()
    return InventoryReader(table=target.resource("InventoryTable"), ddb=target.client("dynamodb"))


@parts_app.command("stock")
@stack_command
def parts_stock(sku: str | None = None, *, opts: StackOptions) -> None:
    """Stock per SKU and warehouse."""
    rows = [{k: item.get(k, 0) for k in STOCK_FIELDS} for item in _reader(opts).stock()]
    if sku:
        rows = [r for r in rows if r["sku"] == sku]
    emit(rows, opts.json, STOCK_FIELDS)


def reorder_rows(reader: InventoryReader, now: datetime) -> list[dict[str, Any]]:
    """A suggestion for every stock item at/below its reorder point or with backorders."""
    policy = ReorderPolicy()
    parts = reader.parts()
    since = now - timedelta(days=policy.window_days)
    rows = []
    for item in reader.stock():
        level = stock_from_item(item)
        backordered = int(item.get("backordered", 0))
        if level.available > level.reorder_point and backordered == 0:
            continue
        suggestion = suggest_reorder(
            level,
            consumed_in_window=reader.consumed_since(level.sku, level.warehouse, since),
            backordered=backordered,
            lead_time_days=int(parts.get(level.sku, {}).get("lead_time_days", 14)),
            policy=policy,
        )
        rows.append(
            {
                "sku": level.sku,
                "warehouse": level.warehouse,
                "suggested_qty": suggestion.suggested_qty,
                "reason": suggestion.reason,
            }
        )
    return rows


@parts_app.command("reorder")
@stack_command
def parts_reorder(*, opts: StackOptions) -> None:
    """Reorder suggestions (fault-driven demand)."""
    rows = reorder_rows(_reader(opts), datetime.now(UTC))
    emit(rows, opts.json, ["sku", "warehouse", "suggested_qty", "reason"])


@parts_app.command("events")
@stack_command
def parts_events(*, opts: StackOptions) -> None:
    """Low-stock events emitted."""
    rows = [
        {
            "sku": e["sku"],
            "warehouse": e["warehouse"],
            "available": e["available"],
            "reorder_point": e["reorder_point"],
            "suggested_qty": e["suggestion"]["suggested_qty"],
            "published": e.get("published"),
            "at": e["at"],
        }
        for e in _reader(opts).low_stock_events()
    ]
    emit(rows, opts.json, ["at", "sku", "warehouse", "available", "suggested_qty", "published"])


@parts_app.command("reserve")
@stack_command
def parts_reserve(
    ticket_id: Positional,
    sku: Positional,
    reason: Reason,
    actor: str = "engineer-cli",
    hold_hours: int = DEFAULT_HOLD_HOURS,
    *,
    opts: StackOptions,
) -> None:
    """Hold a part for a ticket."""
    ticket = reserve_part(
        store_of(opts.target()),
        ticket_id,
        sku,
        actor=actor,
        reason=reason,
        now=datetime.now(UTC),
        hold=timedelta(hours=hold_hours),
    )
    emit({**ticket_row(ticket), "parts": [p.model_dump(mode="json") for p in ticket.parts]}, True)


@parts_app.command("release")
@stack_command
def parts_release(
    ticket_id: Positional,
    sku: Positional,
    reason: Reason,
    actor: str = "engineer-cli",
    hold_hours: Annotated[int, typer.Option(hidden=True)] = DEFAULT_HOLD_HOURS,
    *,
    opts: StackOptions,
) -> None:
    """Give a ticket's held part back."""
    ticket = release_part(
        store_of(opts.target()), ticket_id, sku, actor=actor, reason=reason, now=datetime.now(UTC)
    )
    emit({**ticket_row(ticket), "parts": [p.model_dump(mode="json") for p in ticket.parts]}, True)


# "-5" is a change, not an option: unknown dash-words reach the arguments.
@parts_app.command("adjust", context_settings={"ignore_unknown_options": True})
@stack_command
def parts_adjust(
    sku: Positional,
    warehouse: Positional,
    change: Annotated[int, typer.Argument(help="+N received, -N written off", show_default=False)],
    reason: Reason,
    actor: str = "engineer-cli",
    *,
    opts: StackOptions,
) -> None:
    """Receive or correct stock, with a reason."""
    target = opts.target()
    writer = DynamoInventoryWriter(
        table=target.resource("InventoryTable"), ddb=target.client("dynamodb")
    )
    level = adjust_stock(
        writer, sku, warehouse, change, reason=reason, actor=actor, now=datetime.now(UTC)
    )
    emit({**level.model_dump(), "available": level.available}, True)


SHARD_FIELDS = ["sku", "warehouse", "shard", "on_hand", "held", "available", "backordered"]


@parts_app.command("shards")
@stack_command
def parts_shards(
    sku: Positional,
    count: Annotated[
        int | None,
        typer.Option(help="raise the part's stock shard count to this (new shards levelled)"),
    ] = None,
    *,
    opts: StackOptions,
) -> None:
    """A part's stock shard items per warehouse; --count N raises how many it has."""
    target = opts.target()
    table, ddb = target.resource("InventoryTable"), target.client("dynamodb")
    if count is not None:
        try:
            DynamoInventoryWriter(table=table, ddb=ddb).set_shard_count(sku, count)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--count") from exc
    found = InventoryReader(table=table, ddb=ddb).stock_shards()
    rows = [{k: item.get(k, 0) for k in SHARD_FIELDS} for item in found if item["sku"] == sku]
    emit(rows, opts.json, SHARD_FIELDS)


@parts_app.command("rebalance")
@stack_command
def parts_rebalance(sku: Positional, warehouse: Positional, *, opts: StackOptions) -> None:
    """Level a part's available units over its stock shards at one warehouse (holds stay)."""
    target = opts.target()
    writer = DynamoInventoryWriter(
        table=target.resource("InventoryTable"), ddb=target.client("dynamodb")
    )
    level = writer.rebalance(sku, warehouse)
    emit({**level.model_dump(mode="json"), "available": level.available}, True)
