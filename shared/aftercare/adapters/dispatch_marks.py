"""Dispatch's writes on TicketsTable and its parts reads on InventoryTable.

TicketsTable access pattern (beside the others in template.yaml): a dispatch decision updates
the ticket's META item (`dispatch_state`, `dispatched_at`, optionally `status` -> scheduled and
the `needs_onsite_dispatch` flag) guarded by its `version`, and puts one timeline entry
(EVT#...), in one TransactWriteItems. `dispatch_state` is what the Dispatcher's stream filter
reads: absent or `wanted` on a flagged active ticket means "dispatch me".
"""

from __future__ import annotations

from typing import Any

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.inventory import part_key
from aftercare.adapters.ticket_items import conditional_put, iso, ticket_key, timeline_item
from aftercare.adapters.transactions import Cancelled, Failure, TxItem, transact
from aftercare.domain.ports.dispatch import DispatchMark
from aftercare.domain.ports.records import ConcurrentUpdate
from aftercare.domain.tickets import TicketFlag


def dispatch_mark_items(table: str, mark: DispatchMark) -> list[TxItem]:
    """The version-guarded ticket update and its timeline entry."""
    ticket = mark.ticket
    sets = ["dispatch_state = :state", "dispatched_at = :now", "updated_at = :now"]
    sets.append("version = :next")
    values: dict[str, Any] = {
        ":state": mark.state.value,
        ":now": iso(mark.entry.at),
        ":next": ticket.version + 1,
        ":version": ticket.version,
    }
    names: dict[str, str] = {}
    if mark.to_status is not None:
        sets.append("#status = :to")
        names["#status"] = "status"
        values[":to"] = mark.to_status.value
    if mark.flag and TicketFlag.NEEDS_ONSITE_DISPATCH not in ticket.flags:
        sets.append("flags = :flags")
        values[":flags"] = [*ticket.flags, TicketFlag.NEEDS_ONSITE_DISPATCH.value]
    update: dict[str, Any] = {
        "TableName": table,
        "Key": to_item(ticket_key(ticket.ticket_id)),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "version = :version",
        "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
    }
    if names:
        update["ExpressionAttributeNames"] = names
    return [
        TxItem({"Update": update}, Failure.STALE),
        conditional_put(table, timeline_item(ticket.ticket_id, mark.entry)),
    ]


def _stale(cancelled: Cancelled) -> Exception:
    return ConcurrentUpdate(f"ticket changed under dispatch ({cancelled.reason})")


class DynamoDispatchMarks:
    """`DispatchMarks` on TicketsTable."""

    def __init__(self, *, tickets_table: str, ddb: Any | None = None) -> None:
        self.tickets_table = tickets_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def mark_dispatch(self, mark: DispatchMark) -> None:
        transact(self.ddb, dispatch_mark_items(self.tickets_table, mark), _stale)


class DynamoLeadTimes:
    """`LeadTimes` from InventoryTable's parts master data (one BatchGetItem)."""

    def __init__(self, *, inventory_table: str, ddb: Any | None = None) -> None:
        self.inventory_table = inventory_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def lead_days(self, skus: list[str]) -> dict[str, int]:
        unique = sorted(set(skus))
        if not unique:
            return {}
        answer = self.ddb.batch_get_item(
            RequestItems={self.inventory_table: {"Keys": [to_item(part_key(s)) for s in unique]}}
        )
        items = (from_item(i) for i in answer.get("Responses", {}).get(self.inventory_table, []))
        return {str(i["sku"]): int(i["lead_time_days"]) for i in items if "lead_time_days" in i}
