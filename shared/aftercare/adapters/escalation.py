"""SLA escalation trackers on TicketsTable (`TICKET#<id> / ESC`) and the duty pager (SNS).

A tracker is in the sparse GSI `by_escalation` (`esc_bucket`, `esc_next_at` epoch seconds)
while it has a next step; the sweeper queries each bucket for `esc_next_at <= now`. Advancing
it is one TransactWriteItems: the tracker (condition: `esc_index` is still the one read), and
when steps acted, the ticket's flags (condition: its version) and timeline entries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.ticket_items import (
    TICKET_PREFIX,
    conditional_put,
    iso,
    ticket_key,
    timeline_item,
)
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.adapters.transactions import Cancelled, Failure, TxItem, transact
from aftercare.domain.escalation import BUCKETS, EscalationPlan
from aftercare.domain.ports import TicketNotFound
from aftercare.domain.ports.records import EscalationTracker
from aftercare.domain.tickets import Ticket

ESC = "ESC"
INDEX = "by_escalation"


class _NotApplied(Exception):
    pass


def tracker_key(ticket_id: str) -> dict[str, str]:
    return {"pk": f"{TICKET_PREFIX}{ticket_id}", "sk": ESC}


def tracker_item(tracker: EscalationTracker) -> dict[str, Any]:
    return {
        **tracker_key(tracker.ticket_id),
        "ticket_id": tracker.ticket_id,
        "esc_index": tracker.index,
        "esc_bucket": tracker.bucket,
        "esc_next_at": tracker.next_epoch,
        "esc_next_iso": iso(tracker.next_at),
    }


def tracker_put(table: str, tracker: EscalationTracker) -> TxItem:
    """The first tracker, written with the ticket it belongs to."""
    return conditional_put(table, tracker_item(tracker))


def tracker_from_item(item: dict[str, Any]) -> EscalationTracker:
    return EscalationTracker(
        ticket_id=str(item["ticket_id"]),
        index=int(item["esc_index"]),
        next_at=datetime.fromisoformat(str(item["esc_next_iso"])),
        bucket=str(item["esc_bucket"]),
    )


def due_query(table: str, bucket: str, now_epoch: int, limit: int) -> dict[str, Any]:
    return {
        "TableName": table,
        "IndexName": INDEX,
        "KeyConditionExpression": "esc_bucket = :b AND esc_next_at <= :now",
        "ExpressionAttributeValues": {":b": to_attr(bucket), ":now": to_attr(now_epoch)},
        "Limit": limit,
    }


def advance_items(table: str, plan: EscalationPlan, tracker: EscalationTracker) -> list[TxItem]:
    condition = "esc_index = :seen"
    seen = {":seen": to_attr(plan.seen_index)}
    key = to_item(tracker_key(tracker.ticket_id))
    if plan.next is None:
        delete = {
            "TableName": table,
            "Key": key,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": seen,
        }
        items = [TxItem({"Delete": delete}, Failure.STALE)]
    else:
        nxt = plan.next
        update = {
            "TableName": table,
            "Key": key,
            "UpdateExpression": "SET esc_index = :i, esc_next_at = :t, esc_next_iso = :iso",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {
                **seen,
                ":i": to_attr(nxt.index),
                ":t": to_attr(nxt.next_epoch),
                ":iso": to_attr(iso(nxt.next_at)),
            },
        }
        items = [TxItem({"Update": update}, Failure.STALE)]
    if plan.changes_ticket:
        items += _ticket_items(table, plan)
    return items


def _ticket_items(table: str, plan: EscalationPlan) -> list[TxItem]:
    ticket = plan.ticket
    at = plan.entries[0].at
    sets = ["updated_at = :now", "version = :next"]
    values: dict[str, Any] = {
        ":now": iso(at),
        ":next": ticket.version + 1,
        ":version": ticket.version,
    }
    if plan.flags is not None:
        sets += ["flags = :flags", "dispatch_reason = :reason"]
        values |= {":flags": [f.value for f in plan.flags], ":reason": plan.dispatch_reason}
    update = {
        "TableName": table,
        "Key": to_item(ticket_key(ticket.ticket_id)),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "version = :version",
        "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
    }
    return [
        TxItem({"Update": update}, Failure.STALE),
        *(
            conditional_put(table, timeline_item(ticket.ticket_id, e, n))
            for n, e in enumerate(plan.entries)
        ),
    ]


class DynamoEscalations(DynamoTicketReader):
    """`EscalationStore` on TicketsTable."""

    def due(self, now: datetime, limit: int) -> list[EscalationTracker]:
        found: list[EscalationTracker] = []
        epoch = int(now.astimezone(UTC).timestamp())
        for n in range(BUCKETS):
            if len(found) >= limit:
                break
            answer = self.ddb.query(
                **due_query(self.tickets_table, f"ESC#{n}", epoch, limit - len(found))
            )
            found += [tracker_from_item(from_item(i)) for i in answer.get("Items", [])]
        return found

    def ticket(self, ticket_id: str) -> Ticket | None:
        try:
            return self.get_ticket(ticket_id).ticket
        except TicketNotFound:
            return None

    def apply(self, plan: EscalationPlan, tracker: EscalationTracker) -> bool:
        def refused(outcome: Cancelled) -> Exception:
            return _NotApplied(outcome.reason)

        try:
            transact(self.ddb, advance_items(self.tickets_table, plan, tracker), refused)
        except _NotApplied:
            return False
        return True


class SnsDutyPager:
    """Pages the duty manager through the ops alerts topic (e-mail/SMS subscriptions)."""

    sns = LazyClient("sns")

    def __init__(self, *, topic_arn: str, sns: Any = None) -> None:
        self.topic_arn = topic_arn
        self._sns = sns

    def page(self, message: str) -> None:
        self.sns.publish(
            TopicArn=self.topic_arn, Subject="Aftercare SLA escalation", Message=message
        )
