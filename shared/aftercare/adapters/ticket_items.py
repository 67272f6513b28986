"""TicketsTable items: keys and the one mapping between stored items and ticket models.

Key layout (see the TicketsTable comment in template.yaml):

    TICKET#<id>          / META                   the ticket record
    TICKET#<id>          / OCC#<received>#<fault>  one occurrence
    TICKET#<id>          / EVT#<at>#<seq>#<rand>   one timeline entry
    TICKET#<id>          / VISIT#<booking_id>      one engineer visit (first-time-fix KPIs)
    OPEN#<thing>#<code>  / LOCK                   the open-fault lock
    RESOLVED#<thing>#<code> / LAST                the last resolution (repeat detection)
    FAULT#<thing>#<fault_id> / DEDUP              a fault that joined an open ticket
    IDEMP#<scope>#<key>  / REQUEST                a person's Idempotency-Key (raised tickets)
    TASKS                / <task_id>              a staff task (a VIP callback), one partition

A fault that opens a ticket needs no DEDUP marker: the ticket's id is derived from
(thing, fault_id) (`ticket_id_for`) and its META item is put only if new, so the ticket itself
marks the fault as applied, for as long as the ticket exists (a marker expires).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aftercare.adapters.aws import from_item, to_item
from aftercare.adapters.transactions import Failure, TxItem
from aftercare.domain.ports import RequestMark, TicketDetail
from aftercare.domain.tickets import Ticket, opened_key, ticket_id_for
from aftercare.models.tickets import Occurrence, TimelineEntry
from aftercare.models.visits import VisitRecord

TICKET_PREFIX = "TICKET#"

META = "META"


def ticket_key(ticket_id: str) -> dict[str, str]:
    return {"pk": f"{TICKET_PREFIX}{ticket_id}", "sk": META}


def lock_key(thing: str, code: str) -> dict[str, str]:
    return {"pk": f"OPEN#{thing}#{code}", "sk": "LOCK"}


def last_resolution_key(thing: str, code: str) -> dict[str, str]:
    return {"pk": f"RESOLVED#{thing}#{code}", "sk": "LAST"}


def dedup_key(thing: str, fault_id: str) -> dict[str, str]:
    return {"pk": f"FAULT#{thing}#{fault_id}", "sk": "DEDUP"}


def request_key(scope: str, key: str) -> dict[str, str]:
    return {"pk": f"IDEMP#{scope}#{key}", "sk": "REQUEST"}


def request_item(mark: RequestMark) -> dict[str, Any]:
    return {**request_key(mark.scope, mark.key), **mark.model_dump(mode="json")}


def iso(value: datetime) -> str:
    return value.isoformat()


def ticket_item(ticket: Ticket) -> dict[str, Any]:
    data = ticket.model_dump(mode="json")
    return {
        **ticket_key(ticket.ticket_id),
        **data,
        "opened_key": opened_key(data["opened_at"], ticket.ticket_id),
    }


# A new ticket's opening timeline entries ride on its first occurrence's item: a transaction
# item costs 2 WRU per KB whatever its size, and the occurrence and its entries are written
# together, once, never changed (`ticket_detail` puts them in the timeline in order).
OPENING_ENTRIES = "opening_entries"


def occurrence_item(
    ticket_id: str, occurrence: Occurrence, entries: Sequence[TimelineEntry] = ()
) -> dict[str, Any]:
    """An occurrence; with `entries`, the timeline entries written with it (see above)."""
    data = occurrence.model_dump(mode="json")
    item = {
        "pk": f"{TICKET_PREFIX}{ticket_id}",
        "sk": f"OCC#{data['received_at']}#{occurrence.fault_id}",
        **data,
    }
    if entries:
        item[OPENING_ENTRIES] = [entry.model_dump(mode="json") for entry in entries]
    return item


def timeline_item(ticket_id: str, entry: TimelineEntry, seq: int = 0) -> dict[str, Any]:
    """Timeline entries sort by time, then by their order within one change (`seq`)."""
    data = entry.model_dump(mode="json")
    return {
        "pk": f"{TICKET_PREFIX}{ticket_id}",
        "sk": f"EVT#{data['at']}#{seq:02d}#{uuid.uuid4().hex[:8]}",
        **data,
    }


NEW = "attribute_not_exists(pk)"


def conditional_put(
    table: str, item: dict[str, Any], condition: str | None = None, failure: Failure | None = None
) -> TxItem:
    put: dict[str, Any] = {"TableName": table, "Item": to_item(item)}
    if condition:
        put["ConditionExpression"] = condition
        put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return TxItem({"Put": put}, failure)


def intake_batch_get(
    devices_table: str, tickets_table: str, thing: str, code: str, fault_id: str
) -> dict[str, Any]:
    keys = [
        lock_key(thing, code),
        last_resolution_key(thing, code),
        dedup_key(thing, fault_id),
        ticket_key(ticket_id_for(thing, fault_id)),  # the ticket this fault opened, if it did
    ]
    return {
        "RequestItems": {
            devices_table: {"Keys": [{"thing": {"S": thing}}], "ConsistentRead": True},
            tickets_table: {"Keys": [to_item(k) for k in keys], "ConsistentRead": True},
        }
    }


def is_ticket_item(item: Mapping[str, Any] | None) -> bool:
    """A ticket's META item (not an occurrence, timeline entry or invariant key)."""
    if not item:
        return False
    return str(item.get("pk", "")).startswith(TICKET_PREFIX) and item.get("sk") == META


def ticket_from_item(item: Mapping[str, Any]) -> Ticket:
    return Ticket.model_validate(item)


VISIT_PREFIX = "VISIT#"


def visit_key(ticket_id: str, booking_id: str) -> dict[str, str]:
    return {"pk": f"{TICKET_PREFIX}{ticket_id}", "sk": f"{VISIT_PREFIX}{booking_id}"}


def fix_history_key(engineer_id: str, model: str, fault_code: str) -> str:
    """The `by_engineer_fault` index's key: an engineer's visits on one model and code."""
    return f"{engineer_id}#{model}#{fault_code}"


def visit_item(visit: VisitRecord) -> dict[str, Any]:
    return {
        **visit_key(visit.ticket_id, visit.booking_id),
        **visit.model_dump(mode="json"),
        "first_time_fix": visit.first_time_fix,
        "ftf_key": fix_history_key(visit.engineer_id, visit.model, visit.fault_code),
    }


def visit_put(table: str, visit: VisitRecord) -> TxItem:
    """The visit record, written with the ticket change it belongs to."""
    return conditional_put(table, visit_item(visit))


def ticket_from_image(image: Mapping[str, Any] | None) -> Ticket | None:
    """A stream record's image (attribute-typed) as the ticket it holds; None when there is no
    image (an insert's old side, a removal's new side) or the item is not a ticket's record."""
    if not image:
        return None
    item = from_item(image)
    return ticket_from_item(item) if is_ticket_item(item) else None


def ticket_detail(items: Iterable[Mapping[str, Any]]) -> TicketDetail | None:
    """A ticket partition's items as the ticket, its occurrences and its timeline."""
    rows = list(items)
    meta = next((i for i in rows if i["sk"] == META), None)
    if meta is None:
        return None
    return TicketDetail(
        ticket=ticket_from_item(meta),
        occurrences=[Occurrence.model_validate(i) for i in rows if i["sk"].startswith("OCC#")],
        timeline=_timeline(rows),
        visits=[VisitRecord.model_validate(i) for i in rows if i["sk"].startswith(VISIT_PREFIX)],
    )


def _timeline(rows: Sequence[Mapping[str, Any]]) -> list[TimelineEntry]:
    """The timeline entries' items and the opening entries kept on an occurrence's item, in
    the entries' own order: time, then their order within one change."""
    keyed = [
        (str(row["sk"]).removeprefix("EVT#"), TimelineEntry.model_validate(row))
        for row in rows
        if row["sk"].startswith("EVT#")
    ]
    for row in rows:
        if row["sk"].startswith("OCC#"):
            for seq, entry in enumerate(row.get(OPENING_ENTRIES) or ()):
                keyed.append((f"{entry['at']}#{seq:02d}#", TimelineEntry.model_validate(entry)))
    return [entry for _, entry in sorted(keyed, key=lambda pair: pair[0])]


# ---- calendar audit entries on the tickets stream (what the notifier confirms and reminds)

VISIT_BOOKED_KINDS = frozenset({"visit_booked", "visit_rescheduled"})


def booked_visit(image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The visit a calendar audit entry (`visit_booked`, `visit_rescheduled` on the ticket's
    timeline, written with the booking) announces: booking, engineer, window; else None."""
    if not image or not str(image.get("sk", "")).startswith("EVT#"):
        return None
    if image.get("kind") not in VISIT_BOOKED_KINDS:
        return None
    detail = image.get("detail")
    if not isinstance(detail, Mapping) or not detail.get("start"):
        return None
    return {
        "booking_id": detail.get("booking_id"),
        "engineer_id": detail.get("engineer_id"),
        "status": "scheduled",
        "start": detail.get("start"),
        "end": detail.get("end"),
        "time_zone": detail.get("time_zone"),
    }


def replaced_visit(image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The visit whose window a calendar audit entry ends: a reschedule's old booking and
    start (`from_booking`, `from_start`), or a cancelled booking itself; else None."""
    if not image or not str(image.get("sk", "")).startswith("EVT#"):
        return None
    detail = image.get("detail")
    if not isinstance(detail, Mapping):
        return None
    kind = image.get("kind")
    if kind == "visit_rescheduled" and detail.get("from_booking") and detail.get("from_start"):
        booking_id, start = detail["from_booking"], detail["from_start"]
    elif kind == "visit_cancelled" and detail.get("booking_id") and detail.get("start"):
        booking_id, start = detail["booking_id"], detail["start"]
    else:
        return None
    engineer = detail.get("engineer_id") or ""
    return {
        "booking_id": booking_id,
        "engineer_id": engineer,
        "status": "cancelled",
        "start": start,
    }


def ticket_of_entry(image: Mapping[str, Any]) -> str:
    return str(image.get("pk", "")).removeprefix("TICKET#")
