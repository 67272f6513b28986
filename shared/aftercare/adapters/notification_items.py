"""DynamoDB adapter for notifications, bundles, surveys, follow-ups and CSAT.

Key layout (see the NotificationsTable comment in template.yaml):

    TICKET#<id>   / EVENT#<kind>             one (ticket, event kind): dedup marker + state
    TICKET#<id>   / EVENT#<kind>#<occasion>  a visit message: one per (ticket, kind, visit),
                                             occasion `<booking_id>@<start>`
    TICKET#<id>   / ATT#<at>#<msg>#<n>       one delivery attempt (the notification log)
    CUSTOMER#<id> / BUNDLE                   digest window + messages waiting for the customer
    SURVEY#<id>   / SURVEY                   a survey: due time, status, the one answer
    FOLLOWUPS     / <at>#<survey_id>         a follow-up task for managers (rating 1-2)
    STATS         / CSAT                     answer counters (answered, satisfied, r1..r5)

Items waiting to be sent carry `due_queue` (event|digest|survey) and `due_ms`, the keys of the
sparse `by_due` index the scheduled sweep queries; `lease_ms` keeps two senders apart.
Attempts carry `attempt_key`, the sort key of the sparse `by_customer` index.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import ClientError

from aftercare.adapters.aws import to_attr, to_item
from aftercare.domain.notifications import (
    AttemptRecord,
    Notification,
    NotificationRef,
    NotificationState,
    Survey,
)
from aftercare.models.tickets import TimelineEntry

RETENTION: Final = timedelta(days=400)
BATCH_WRITE: Final = 25
BATCH_GET: Final = 100
CLAIM_PAGE: Final = 100
# Per queue and sweep: a morning's quiet-hours flush drains over a few sweeps, within the timeout.
CLAIM_LIMIT: Final = 300
WAITING = (
    NotificationState.PENDING.value,
    NotificationState.DEFERRED.value,
    NotificationState.DIGESTED.value,
)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(value: int | float) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def notification_key(ref: NotificationRef) -> dict[str, str]:
    sk = f"EVENT#{ref.kind.value}"
    return {"pk": f"TICKET#{ref.ticket_id}", "sk": f"{sk}#{ref.occasion}" if ref.occasion else sk}


def withdraw_update(table: str, ref: NotificationRef, reason: str) -> dict[str, Any]:
    """A notification still waiting (pending, deferred, digested) settled as suppressed and
    taken out of the due queue; one already sent (or gone) fails the condition."""
    return {
        "TableName": table,
        "Key": to_item(notification_key(ref)),
        "UpdateExpression": (
            "SET #state = :suppressed, withdrawn = :reason REMOVE due_queue, due_ms"
        ),
        "ConditionExpression": "#state IN (:w0, :w1, :w2)",
        "ExpressionAttributeNames": {"#state": "state"},
        "ExpressionAttributeValues": values_of(
            suppressed=NotificationState.SUPPRESSED.value,
            reason=reason,
            **{f"w{n}": state for n, state in enumerate(WAITING)},
        ),
    }


def bundle_key(customer_id: str) -> dict[str, str]:
    return {"pk": f"CUSTOMER#{customer_id}", "sk": "BUNDLE"}


def survey_key(survey_id: str) -> dict[str, str]:
    return {"pk": f"SURVEY#{survey_id}", "sk": "SURVEY"}


CSAT_KEY: Final = {"pk": "STATS", "sk": "CSAT"}


def expiry(moment: datetime) -> int:
    return int((moment + RETENTION).timestamp())


def notification_item(n: Notification, lease_until: datetime) -> dict[str, Any]:
    return {
        **notification_key(n.ref),
        **n.model_dump(mode="json"),
        "due_queue": "event",
        "due_ms": ms(n.due_at),
        "lease_ms": ms(lease_until),
        "expires_at": expiry(n.created_at),
    }


def settled_item(n: Notification) -> dict[str, Any]:
    """A notification as decided: back in the due queue only when pending (a retry)."""
    item = {
        **notification_key(n.ref),
        **n.model_dump(mode="json"),
        "expires_at": expiry(n.created_at),
    }
    if n.state is NotificationState.PENDING:
        item |= {"due_queue": "event", "due_ms": ms(n.due_at)}
    return item


def attempt_items(record: AttemptRecord, index: int) -> dict[str, Any]:
    at = record.at.isoformat()
    suffix = f"{at}#{record.message_id}#{index:03d}"
    return {
        "pk": f"TICKET#{record.ticket_id}",
        "sk": f"ATT#{suffix}",
        **record.model_dump(mode="json"),
        "attempt_key": f"{at}#{record.ticket_id}#{record.message_id}#{index:03d}",
        "expires_at": expiry(record.at),
    }


def timeline_entry(record: AttemptRecord) -> TimelineEntry:
    detail: dict[str, Any] = {
        "notification": record.kind,
        "status": record.status.value,
        "channel": record.channel,
        "language": record.language,
        "reason": record.reason,
        "message_id": record.message_id,
    }
    if record.digest_size:
        detail["digest_of"] = record.digest_size
    if record.customer_pays is not None:
        detail["customer_pays"] = str(record.customer_pays)
    return TimelineEntry(
        at=record.at,
        kind="notification",
        actor="notifier",
        detail={k: v for k, v in detail.items() if v is not None},
    )


def survey_item(survey: Survey) -> dict[str, Any]:
    return {
        **survey_key(survey.survey_id),
        **survey.model_dump(mode="json"),
        "due_queue": "survey",
        "due_ms": ms(survey.due_at),
    }


def release_update(key: dict[str, Any], lease_until: datetime) -> dict[str, Any]:
    """Drop this sender's lease on one item (and nobody else's: the lease must be ours)."""
    return {
        "Key": key,
        "UpdateExpression": "REMOVE lease_ms",
        "ConditionExpression": "lease_ms = :lease",
        "ExpressionAttributeValues": values_of(lease=ms(lease_until)),
    }


def values_of(**values: Any) -> dict[str, Any]:
    return {f":{k}": to_attr(v) for k, v in values.items()}


def claim_update(queue: str, key: dict[str, Any], now: datetime, lease: datetime) -> dict[str, Any]:
    """Lease one due item to this sender, unless another holds a live lease on it."""
    return {
        "Key": key,
        "UpdateExpression": "SET lease_ms = :lease",
        "ConditionExpression": (
            "due_queue = :queue AND due_ms <= :now "
            "AND (attribute_not_exists(lease_ms) OR lease_ms <= :now)"
        ),
        "ExpressionAttributeValues": values_of(queue=queue, now=ms(now), lease=ms(lease)),
        "ReturnValues": "ALL_NEW",
    }


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
