"""`aftercare notifications|surveys|followups …`: what customers were told, surveys, follow-ups.

Also `notification_summary(target)`, the notification part of the demo summary.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import quote

import typer
from aftercare.adapters.notifications_store import DynamoNotificationStore

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import api_client_for
from infra.target import Target

ATTEMPT_FIELDS = [
    "ticket_id",
    "customer_id",
    "kind",
    "channel",
    "language",
    "status",
    "sent_at",
    "reason",
    "message_id",
    "digest_size",
]
SURVEY_FIELDS = [
    "survey_id",
    "ticket_id",
    "customer_id",
    "status",
    "due_at",
    "sent_at",
    "rating",
    "comment",
    "answered_at",
]
FOLLOWUP_FIELDS = [
    "survey_id",
    "ticket_id",
    "customer_id",
    "rating",
    "comment",
    "fault_code",
    "created_at",
    "status",
]


def notification_store(target: Target) -> DynamoNotificationStore:
    return DynamoNotificationStore(
        table=target.resource("NotificationsTable"),
        tickets_table=target.resource("TicketsTable"),
        customers_table=target.resource("CustomersTable"),
        ddb=target.client("dynamodb"),
    )


def _store(opts: StackOptions) -> DynamoNotificationStore:
    return notification_store(opts.target())


def attempt_row(item: dict[str, Any]) -> dict[str, Any]:
    """One attempt as `notifications list` prints it (`sent_at` is when it was attempted)."""
    row = {k: item.get(k) for k in ATTEMPT_FIELDS}
    row["sent_at"] = item.get("at")
    return row


notifications_app = typer.Typer(help="what customers were told, per attempt")
surveys_app = typer.Typer(help="satisfaction surveys")
followups_app = typer.Typer(help="follow-up tasks for managers")


@notifications_app.command("list")
@stack_command
def notifications_list(
    ticket: str | None = None,
    customer: str | None = None,
    kind: str | None = None,
    status: Literal["sent", "failed", "deferred", "suppressed"] | None = None,
    channel: Literal["email", "sms", "push"] | None = None,
    *,
    opts: StackOptions,
) -> None:
    """Every delivery attempt (sent, failed with reason, deferred, suppressed), oldest first."""
    items = _store(opts).list_attempts(ticket_id=ticket, customer_id=customer)
    rows = [
        r
        for r in (attempt_row(i) for i in items)
        if (kind is None or r["kind"] == kind)
        and (status is None or r["status"] == status)
        and (channel is None or r["channel"] == channel)
    ]
    emit(rows, opts.json, ATTEMPT_FIELDS[:7])


@surveys_app.command("list")
@stack_command
def surveys_list(*, opts: StackOptions) -> None:
    """Surveys with their status and answer."""
    items = sorted(_store(opts).list_surveys(), key=lambda i: str(i.get("due_at")))
    emit([{k: i.get(k) for k in SURVEY_FIELDS} for i in items], opts.json, SURVEY_FIELDS[:7])


@surveys_app.command("csat")
@stack_command
def surveys_csat(*, opts: StackOptions) -> None:
    """CSAT: the share of survey answers rated 4 or 5."""
    emit(csat_view(_store(opts)), True)


@surveys_app.command("answer")
@stack_command
def surveys_answer(
    survey_id: Annotated[str, typer.Argument(show_default=False)],
    rating: Annotated[int, typer.Option(min=1, max=5, show_default=False)],
    comment: str | None = None,
    *,
    opts: StackOptions,
) -> None:
    """Answer a survey through the API as the logged-in customer (`aftercare login`)."""
    api = api_client_for(opts)
    if api is None:
        raise CliError("log in as the survey's customer first: `aftercare login --user NAME`")
    body: dict[str, Any] = {"rating": rating}
    if comment:
        body["comment"] = comment
    emit(api.post(f"/surveys/{quote(survey_id, safe='')}/answer", body), True)


@followups_app.command("list")
@stack_command
def followups_list(
    status: Literal["open", "done"] | None = None,
    *,
    opts: StackOptions,
) -> None:
    """Follow-up tasks for managers (survey ratings of 1-2), newest first."""
    items = _store(opts).list_followups()
    if status:
        items = [i for i in items if i.get("status") == status]
    emit([{k: i.get(k) for k in FOLLOWUP_FIELDS} for i in items], opts.json, FOLLOWUP_FIELDS)


def csat_view(store: DynamoNotificationStore) -> dict[str, Any]:
    csat = store.csat()
    score = csat.score
    return {
        "answered": csat.answered,
        "satisfied": csat.satisfied,
        "csat": round(score, 4) if score is not None else None,
        "ratings": csat.ratings,
    }


# --------------------------------------------------------------------------- demo summary


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def latency(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50_ms": percentile(values, 0.50),
        "p99_ms": percentile(values, 0.99),
        "max_ms": max(values) if values else None,
    }


def first_notifications(attempts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ticket, the first sent attempt of its `ticket_opened` message."""
    first: dict[str, dict[str, Any]] = {}
    for item in sorted(attempts, key=lambda i: str(i.get("at"))):
        if item.get("kind") == "ticket_opened" and item.get("status") == "sent":
            first.setdefault(str(item["ticket_id"]), item)
    return list(first.values())


def message_counts(attempts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Messages handed to a provider (one per message id), by channel and by kind."""
    sent: dict[str, dict[str, Any]] = {}
    for item in attempts:
        if item.get("status") == "sent":
            sent.setdefault(str(item["message_id"]), item)
    by_kind = Counter("digest" if i.get("digest_size") else str(i["kind"]) for i in sent.values())
    by_channel = Counter(str(i.get("channel")) for i in sent.values())
    fallbacks = {
        str(i["message_id"])
        for i in attempts
        if i.get("status") == "failed" and str(i.get("message_id")) in sent
    }
    return {
        "messages": len(sent),
        "by_channel": dict(sorted(by_channel.items())),
        "by_kind": dict(sorted(by_kind.items())),
        "after_fallback": len(fallbacks),
    }


def notification_summary(target: Target) -> dict[str, Any]:
    """Counts by channel and kind, fault -> first notification latency, surveys and CSAT."""
    store = notification_store(target)
    attempts = store.list_attempts()
    firsts = first_notifications(attempts)
    immediate = [i for i in firsts if not i.get("digest_size")]
    surveys = Counter(str(i.get("status")) for i in store.list_surveys())
    return {
        **message_counts(attempts),
        "attempts": dict(sorted(Counter(str(i.get("status")) for i in attempts).items())),
        "failure_reasons": dict(
            Counter(str(i.get("reason")) for i in attempts if i.get("status") == "failed")
        ),
        "fault_to_first_notification": {
            "sent_at_once": latency([float(i["from_fault_ms"]) for i in immediate]),
            "all_including_digests": latency([float(i["from_fault_ms"]) for i in firsts]),
        },
        "surveys": {
            "scheduled": sum(surveys.values()),
            "sent": surveys["sent"] + surveys["answered"],
            "answered": surveys["answered"],
        },
        "csat": csat_view(store),
        "followups_open": sum(1 for f in store.list_followups() if f.get("status") == "open"),
    }
