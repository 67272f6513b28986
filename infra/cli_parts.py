"""`aftercare parts …`: stock, reorder suggestions, low-stock events, manual holds/adjustments."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from aftercare.adapters.inventory import DynamoInventoryWriter, InventoryReader, stock_from_item
from aftercare.domain.parts import ReorderPolicy, suggest_reorder
from aftercare.domain.stock import adjust_stock, release_part, reserve_part

from infra.cli import _add, emit, store_of, target_of, ticket_row

STOCK_FIELDS = ["sku", "warehouse", "on_hand", "held", "available", "reorder_point", "backordered"]
DEFAULT_HOLD = timedelta(hours=72)


def _reader(args: argparse.Namespace) -> InventoryReader:
    target = target_of(args)
    return InventoryReader(table=target.resource("InventoryTable"), ddb=target.client("dynamodb"))


def cmd_stock(args: argparse.Namespace) -> None:
    rows = [{k: item.get(k, 0) for k in STOCK_FIELDS} for item in _reader(args).stock()]
    if args.sku:
        rows = [r for r in rows if r["sku"] == args.sku]
    emit(rows, args.json, STOCK_FIELDS)


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


def cmd_reorder(args: argparse.Namespace) -> None:
    rows = reorder_rows(_reader(args), datetime.now(UTC))
    emit(rows, args.json, ["sku", "warehouse", "suggested_qty", "reason"])


def cmd_events(args: argparse.Namespace) -> None:
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
        for e in _reader(args).low_stock_events()
    ]
    emit(rows, args.json, ["at", "sku", "warehouse", "available", "suggested_qty", "published"])


def cmd_reserve(args: argparse.Namespace) -> None:
    ticket = reserve_part(
        store_of(target_of(args)),
        args.ticket_id,
        args.sku,
        actor=args.actor,
        reason=args.reason,
        now=datetime.now(UTC),
        hold=timedelta(hours=args.hold_hours),
    )
    emit({**ticket_row(ticket), "parts": [p.model_dump(mode="json") for p in ticket.parts]}, True)


def cmd_release(args: argparse.Namespace) -> None:
    ticket = release_part(
        store_of(target_of(args)),
        args.ticket_id,
        args.sku,
        actor=args.actor,
        reason=args.reason,
        now=datetime.now(UTC),
    )
    emit({**ticket_row(ticket), "parts": [p.model_dump(mode="json") for p in ticket.parts]}, True)


def cmd_adjust(args: argparse.Namespace) -> None:
    target = target_of(args)
    writer = DynamoInventoryWriter(
        table=target.resource("InventoryTable"), ddb=target.client("dynamodb")
    )
    level = adjust_stock(
        writer,
        args.sku,
        args.warehouse,
        args.change,
        reason=args.reason,
        actor=args.actor,
        now=datetime.now(UTC),
    )
    emit({**level.model_dump(), "available": level.available}, True)


def register(sub: Any) -> None:
    parts = sub.add_parser("parts", help="spare parts and stock").add_subparsers(required=True)
    _add(parts, "stock", cmd_stock, "stock per SKU and warehouse").add_argument("--sku")
    _add(parts, "reorder", cmd_reorder, "reorder suggestions (fault-driven demand)")
    _add(parts, "events", cmd_events, "low-stock events emitted")
    for name, func, text in (
        ("reserve", cmd_reserve, "hold a part for a ticket"),
        ("release", cmd_release, "give a ticket's held part back"),
    ):
        parser = _add(parts, name, func, text)
        parser.add_argument("ticket_id")
        parser.add_argument("sku")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--actor", default="engineer-cli")
        parser.add_argument(
            "--hold-hours", type=int, default=int(DEFAULT_HOLD.total_seconds() // 3600)
        )
    adjust = _add(parts, "adjust", cmd_adjust, "receive or correct stock, with a reason")
    adjust.add_argument("sku")
    adjust.add_argument("warehouse")
    adjust.add_argument("change", type=int, help="+N received, -N written off")
    adjust.add_argument("--reason", required=True)
    adjust.add_argument("--actor", default="engineer-cli")
