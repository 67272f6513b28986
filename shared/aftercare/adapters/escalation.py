"""SLA escalation state on the ticket's own item (`TICKET#<id> / META`) and the duty pager (SNS).

A ticket with a next step carries `esc_index`, `esc_bucket` (ESC#0-7) and `esc_next_at` (epoch
seconds), which put it in the sparse GSI `by_escalation` (bucket, next-at; INCLUDE `esc_index`
only); the sweeper queries each bucket for `esc_next_at <= now`. Intake writes them with the
ticket's put (no item of their own), a status change that ends the ticket removes them.
Advancing is one conditional update of the ticket (condition: `esc_index` is still the one
read, plus the ticket's version when steps acted), in one transaction with the timeline
entries when there are any.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.ticket_items import (
    TICKET_PREFIX,
    conditional_put,
    iso,
    ticket_from_item,
    ticket_key,
    timeline_item,
)
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.adapters.transactions import Cancelled, Failure, TxItem, transact
from aftercare.domain.ports.records import EscalationTracker
from aftercare.domain.tickets import Ticket

if TYPE_CHECKING:  # the escalation rules are imported by the sweeper, not by every ticket writer
    from aftercare.domain.escalation import EscalationPlan

INDEX = "by_escalation"
ESCALATION_ATTRIBUTES = ("esc_index", "esc_bucket", "esc_next_at")
# What a ticket leaving the active states (or its schedule ending) drops: out of the index.
REMOVE_ESCALATION = "REMOVE " + ", ".join(ESCALATION_ATTRIBUTES)


class _NotApplied(Exception):
    pass


def _refused(outcome: Cancelled) -> Exception:
    return _NotApplied(outcome.reason)


def _condition_failed(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


def tracker_attributes(tracker: EscalationTracker) -> dict[str, Any]:
    """The ticket item's escalation attributes (merged into its put at intake)."""
    return {
        "esc_index": tracker.index,
        "esc_bucket": tracker.bucket,
        "esc_next_at": tracker.next_epoch,
    }


def tracker_from_item(item: dict[str, Any]) -> EscalationTracker:
    """A `by_escalation` entry (or the ticket item) as the tracker it holds."""
    return EscalationTracker(
        ticket_id=str(item["pk"]).removeprefix(TICKET_PREFIX),
        index=int(item["esc_index"]),
        next_at=datetime.fromtimestamp(int(item["esc_next_at"]), UTC),
        bucket=str(item["esc_bucket"]),
    )


LEGACY_SK = "ESC"  # the tracker's own item before it moved onto the ticket


def adopt_items(table: str, legacy: dict[str, Any]) -> list[TxItem]:
    """A tracker item written before the move (`TICKET#<id> / ESC`) onto its ticket's item
    (unless the ticket has escalation attributes already, or is gone), and the item deleted
    if it still holds what was read. Without this a stage upgraded with trackers in flight
    would find them due on every sweep and never advance them."""
    tracker = tracker_from_item(legacy)
    attrs = tracker_attributes(tracker)
    put_on_ticket = {
        "TableName": table,
        "Key": to_item(ticket_key(tracker.ticket_id)),
        "UpdateExpression": "SET " + ", ".join(f"{k} = :{k}" for k in attrs),
        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(esc_index)",
        "ExpressionAttributeValues": {f":{k}": to_attr(v) for k, v in attrs.items()},
    }
    return [TxItem({"Update": put_on_ticket}, Failure.STALE), _legacy_delete(table, legacy)]


def _legacy_delete(table: str, legacy: dict[str, Any]) -> TxItem:
    delete = {
        "TableName": table,
        "Key": to_item({"pk": legacy["pk"], "sk": LEGACY_SK}),
        "ConditionExpression": "esc_index = :seen",
        "ExpressionAttributeValues": {":seen": to_attr(int(legacy["esc_index"]))},
    }
    return TxItem({"Delete": delete}, Failure.STALE)


def due_query(table: str, bucket: str, now_epoch: int, limit: int) -> dict[str, Any]:
    return {
        "TableName": table,
        "IndexName": INDEX,
        "KeyConditionExpression": "esc_bucket = :b AND esc_next_at <= :now",
        "ExpressionAttributeValues": {":b": to_attr(bucket), ":now": to_attr(now_epoch)},
        "Limit": limit,
    }


def advance_update(table: str, plan: EscalationPlan) -> dict[str, Any]:
    """The ticket's one conditional update: its escalation attributes advanced (or removed
    when the schedule is done), and when steps acted, its flags, `updated_at` and version."""
    from aftercare.domain.escalation import WANTED

    conditions = ["esc_index = :seen"]
    sets: list[str] = []
    values: dict[str, Any] = {":seen": plan.seen_index}
    if plan.next is not None:
        sets += ["esc_index = :i", "esc_next_at = :t"]
        values |= {":i": plan.next.index, ":t": plan.next.next_epoch}
    if plan.changes_ticket:
        ticket = plan.ticket
        conditions.append("version = :version")
        sets += ["updated_at = :now", "version = :next"]
        values |= {
            ":now": iso(plan.entries[0].at),
            ":next": ticket.version + 1,
            ":version": ticket.version,
        }
        if plan.flags is not None:
            sets += ["flags = :flags", "dispatch_reason = :reason"]
            values |= {":flags": [f.value for f in plan.flags], ":reason": plan.dispatch_reason}
        if plan.redispatch:  # the Dispatcher's stream filter passes `wanted`: it runs again
            sets.append("dispatch_state = :wanted")
            values[":wanted"] = WANTED
    parts = ["SET " + ", ".join(sets)] if sets else []
    if plan.next is None:
        parts.append(REMOVE_ESCALATION)
    return {
        "TableName": table,
        "Key": to_item(ticket_key(plan.ticket.ticket_id)),
        "UpdateExpression": " ".join(parts),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
    }


def advance_items(table: str, plan: EscalationPlan) -> list[TxItem]:
    """The ticket's update and, when steps acted, their timeline entries."""
    return [
        TxItem({"Update": advance_update(table, plan)}, Failure.STALE),
        *(
            conditional_put(table, timeline_item(plan.ticket.ticket_id, e, n))
            for n, e in enumerate(plan.entries)
        ),
    ]


class DynamoEscalations(DynamoTicketReader):
    """`EscalationStore` on TicketsTable."""

    def due(self, now: datetime, limit: int) -> list[EscalationTracker]:
        from aftercare.domain.escalation import BUCKETS

        found: list[EscalationTracker] = []
        epoch = int(now.astimezone(UTC).timestamp())
        for n in range(BUCKETS):
            if len(found) >= limit:
                break
            answer = self.ddb.query(
                **due_query(self.tickets_table, f"ESC#{n}", epoch, limit - len(found))
            )
            for entry in (from_item(i) for i in answer.get("Items", [])):
                if entry["sk"] == LEGACY_SK and not self._adopted(entry):
                    continue
                found.append(tracker_from_item(entry))
        return found

    def _adopted(self, legacy: dict[str, Any]) -> bool:
        """Move a pre-upgrade tracker item onto its ticket; False when there is nothing to
        sweep (the ticket has its own attributes, is gone, or another sweep moved it)."""
        try:
            transact(self.ddb, adopt_items(self.tickets_table, legacy), _refused)
        except _NotApplied:
            self._write("delete_item", _legacy_delete(self.tickets_table, legacy).request["Delete"])
            return False
        return True

    def _write(self, operation: str, request: dict[str, Any]) -> bool:
        """One conditional single-item write; False when its condition failed."""
        try:
            getattr(self.ddb, operation)(**request)
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            return False
        return True

    def ticket(self, ticket_id: str) -> Ticket | None:
        """The ticket's own item only (GetItem, 1 RRU): not its partition's occurrences,
        timeline and diagnostics, which a Query would read and bill by the 4 KB."""
        item = self.ddb.get_item(
            TableName=self.tickets_table, Key=to_item(ticket_key(ticket_id)), ConsistentRead=True
        ).get("Item")
        return ticket_from_item(from_item(item)) if item else None

    def apply(self, plan: EscalationPlan, tracker: EscalationTracker) -> bool:
        """Only stale steps skipped: one UpdateItem (a one-item transaction costs double)."""
        if not plan.changes_ticket:
            return self._write("update_item", advance_update(self.tickets_table, plan))
        try:
            transact(self.ddb, advance_items(self.tickets_table, plan), _refused)
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
