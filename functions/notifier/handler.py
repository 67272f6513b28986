"""Notifier (TicketsTable stream): tells the customer about a ticket change, once per event.

A batch holds ticket META changes (the event source filters out everything else). Changes of
different tickets are independent, so they are handled in parallel, while the changes of one
ticket keep their stream order. A failed change is reported by its sequence number (partial
batch response): the stream redelivers from there, and what was already notified is absorbed by
the (ticket, event kind) markers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.aws import from_item
from aftercare.adapters.notifier_factory import NotifierSettings, build_notifier
from aftercare.adapters.ticket_items import (
    booked_visit,
    replaced_visit,
    ticket_from_image,
    ticket_of_entry,
)
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.domain.notifications import Outcome
from aftercare.domain.notifier import Notifier
from aftercare.domain.sla import SlaBreach, sla_breaches
from aftercare.domain.tickets import Ticket
from aftercare.observability import logger, metrics
from aftercare.records import FAILED_RECORD, stream_record_identity
from aftercare.runtime import entry_point
from aftercare.settings import load_settings
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, ValidationError

PARALLEL_TICKETS = 8


class Settings(NotifierSettings):
    """NOTIFICATIONS_TABLE, TICKETS_TABLE, CUSTOMERS_TABLE, SENDER_ADDRESS, PUSH_TOPIC_ARN,
    DIGEST_WINDOW_SECONDS, SURVEY_DELAY_SECONDS, SURVEY_LINK_BASE."""


@cache
def deps() -> Notifier:
    return build_notifier(load_settings(Settings))  # values come from the environment


@cache
def ticket_reader() -> DynamoTicketReader:
    """A booked visit's ticket (its audit entry carries only the booking)."""
    return DynamoTicketReader(tickets_table=load_settings(Settings).tickets_table)


class TicketChange(BaseModel):
    """One stream record: the item's key, and the ticket before and after (None: no ticket)."""

    model_config = ConfigDict(frozen=True)

    sequence: str
    key: str
    old: Ticket | None = None
    new: Ticket | None = None
    unreadable: str | None = None  # why an image is no valid ticket: this record fails alone
    booked: dict[str, Any] | None = None  # a visit the calendar booked (its audit entry)
    replaced: dict[str, Any] | None = None  # a visit rescheduled or cancelled (its window gone)
    identity: dict[str, Any]  # what the failure log names: event id, sequence number, age

    @classmethod
    def of(cls, record: dict[str, Any]) -> TicketChange:
        data = record["dynamodb"]
        head = {
            "sequence": str(data["SequenceNumber"]),
            "key": str(data.get("Keys", {}).get("pk", {}).get("S", "")),
            "identity": stream_record_identity(record),
        }
        entry = from_item(data["NewImage"]) if data.get("NewImage") else None
        booked, replaced = booked_visit(entry), replaced_visit(entry)
        if booked is not None or replaced is not None:
            return cls(**head, booked=booked, replaced=replaced)
        try:
            old = ticket_from_image(data.get("OldImage"))
            new = ticket_from_image(data.get("NewImage"))
        except ValidationError as exc:
            return cls(**head, unreadable=str(exc))
        return cls(**head, old=old, new=new)

    @property
    def ticket_id(self) -> str:
        return ticket_of_entry({"pk": self.key})


OUTCOME_METRICS = {
    "sent": "NotificationSent",
    "failed": "NotificationFailed",
    "retry": "NotificationRetried",
    "deferred": "NotificationDeferred",
    "digested": "NotificationDigested",
    "duplicate": "NotificationDuplicateAbsorbed",
    "suppressed": "NotificationSuppressed",
    "scheduled": "SurveyScheduled",
    "withdrawn": "VisitReminderWithdrawn",
}


def report(outcome: Outcome) -> None:
    """Log and count one outcome; a missing translation is logged as such."""
    if outcome.language_fallback:
        logger.warning(
            "template translation missing; sent in English",
            extra={"kind": outcome.kind, "requested_language": outcome.language_fallback},
        )
    metrics.add_metric(
        name=OUTCOME_METRICS.get(outcome.result, "NotificationOther"),
        unit=MetricUnit.Count,
        value=1,
    )
    logger.info("notification", extra=outcome.model_dump(mode="json", exclude_none=True))


def report_breach(breach: SlaBreach) -> None:
    """Count (`SlaBreached`, by target: alarm `SlaBreachedAlarm`) and log one missed target."""
    with single_metric(name="SlaBreached", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="target", value=breach.kind.value)
    logger.warning(
        "SLA breached",
        extra={
            "ticket_id": breach.ticket_id,
            "target": breach.kind.value,
            "due": breach.due.isoformat(),
            "met_at": breach.met_at.isoformat(),
            "late_by_s": int(breach.late_by.total_seconds()),
        },
    )


Handled = tuple[list[Outcome], str | None]  # outcomes, sequence number of the first failure


def handle_in_order(
    changes: Sequence[TicketChange], apply: Callable[[TicketChange], list[Outcome]]
) -> Handled:
    """One ticket's changes in stream order; stop at the first failure."""
    outcomes: list[Outcome] = []
    for change in changes:
        try:
            outcomes += apply(change)
        except Exception:  # reported as a batch item failure; the stream redelivers it
            logger.exception(FAILED_RECORD, extra=change.identity)
            return outcomes, change.sequence
    return outcomes, None


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    notifier = deps()  # settings validated first: a missing variable fails with its name
    changes = [TicketChange.of(r) for r in event.get("Records") or []]
    metrics.add_metric(name="TicketChangesSeen", unit=MetricUnit.Count, value=len(changes))
    notifier.prefetch(c.new for c in changes)
    by_ticket: dict[str, list[TicketChange]] = {}
    for change in changes:
        by_ticket.setdefault(change.key, []).append(change)

    breaches: list[SlaBreach] = []  # of changes handled: a redelivered one is not recounted

    def apply(change: TicketChange) -> list[Outcome]:
        if change.booked is not None:  # the calendar's audit entry of a booked visit
            ticket = ticket_reader().get_ticket(change.ticket_id).ticket
            return notifier.on_visit_booked(
                change.booked, ticket, datetime.now(UTC), replaced=change.replaced
            )
        if change.replaced is not None:  # a cancelled visit: no reminder for it
            return [notifier.withdraw_reminder(change.ticket_id, change.replaced)]
        if change.unreadable is not None:
            raise ValueError(f"ticket image is no valid ticket: {change.unreadable}")
        outcomes = notifier.on_ticket_change(change.old, change.new, datetime.now(UTC))
        breaches.extend(sla_breaches(change.old, change.new))
        return outcomes

    with ThreadPoolExecutor(max_workers=PARALLEL_TICKETS) as pool:
        handled = list(pool.map(lambda group: handle_in_order(group, apply), by_ticket.values()))
    failed = sorted((seq for _, seq in handled if seq is not None), key=int)
    for outcomes, _ in handled:
        for outcome in outcomes:
            report(outcome)
    for breach in breaches:
        report_breach(breach)
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
