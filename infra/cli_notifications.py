"""`aftercare notifications|surveys|followups …`: what customers were told, surveys, follow-ups.

Also `notification_summary(target)`, the notification part of the demo summary.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from aftercare.adapters.notification_reports import NotificationReports

from infra.cli import CliError, _add, emit, target_of
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


def notification_store(target: Target) -> NotificationReports:
    return NotificationReports(
        table=target.resource("NotificationsTable"), ddb=target.client("dynamodb")
    )


def _store(args: argparse.Namespace) -> NotificationReports:
    return notification_store(target_of(args))


def attempt_row(item: dict[str, Any]) -> dict[str, Any]:
    """One attempt as `notifications list` prints it (`sent_at` is when it was attempted)."""
    row = {k: item.get(k) for k in ATTEMPT_FIELDS}
    row["sent_at"] = item.get("at")
    return row


def cmd_notifications_list(args: argparse.Namespace) -> None:
    """Every delivery attempt (sent, failed with reason, deferred, suppressed), oldest first."""
    items = _store(args).list_attempts(ticket_id=args.ticket, customer_id=args.customer)
    rows = [attempt_row(i) for i in items]
    rows = [
        r
        for r in rows
        if (args.kind is None or r["kind"] == args.kind)
        and (args.status is None or r["status"] == args.status)
        and (args.channel is None or r["channel"] == args.channel)
    ]
    emit(rows, args.json, ATTEMPT_FIELDS[:7])


def cmd_surveys_list(args: argparse.Namespace) -> None:
    """Surveys with their status and answer."""
    items = sorted(_store(args).list_surveys(), key=lambda i: str(i.get("due_at")))
    emit([{k: i.get(k) for k in SURVEY_FIELDS} for i in items], args.json, SURVEY_FIELDS[:7])


def cmd_surveys_csat(args: argparse.Namespace) -> None:
    """CSAT: the share of survey answers rated 4 or 5."""
    emit(csat_view(_store(args)), True)


def cmd_surveys_answer(args: argparse.Namespace) -> None:
    """Answer a survey through the API as the logged-in customer (`aftercare login`)."""
    from infra.cli_api import api_client_for

    api = api_client_for(args)
    if api is None:
        raise CliError("log in as the survey's customer first: `aftercare login --user NAME`")
    body: dict[str, Any] = {"rating": args.rating}
    if args.comment:
        body["comment"] = args.comment
    emit(api.post(f"/surveys/{quote(args.survey_id, safe='')}/answer", body), True)


def cmd_followups_list(args: argparse.Namespace) -> None:
    """Follow-up tasks for managers (survey ratings of 1-2), newest first."""
    items = _store(args).list_followups()
    if args.status:
        items = [i for i in items if i.get("status") == args.status]
    emit([{k: i.get(k) for k in FOLLOWUP_FIELDS} for i in items], args.json, FOLLOWUP_FIELDS)


def csat_view(store: NotificationReports) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- parser


def register(sub: Any) -> None:
    """Add `notifications`, `surveys` and `followups` to the `aftercare` parser."""
    notifications = sub.add_parser("notifications", help="what customers were told, per attempt")
    listing = _add(
        notifications.add_subparsers(required=True),
        "list",
        cmd_notifications_list,
        "delivery attempts (sent, failed, deferred, suppressed)",
    )
    listing.add_argument("--ticket")
    listing.add_argument("--customer")
    listing.add_argument("--kind")
    listing.add_argument("--status", choices=["sent", "failed", "deferred", "suppressed"])
    listing.add_argument("--channel", choices=["email", "sms", "push"])

    surveys = sub.add_parser("surveys", help="satisfaction surveys").add_subparsers(required=True)
    _add(surveys, "list", cmd_surveys_list, "surveys, their status and answers")
    _add(surveys, "csat", cmd_surveys_csat, "CSAT: share of answers rated 4-5")
    answer = _add(surveys, "answer", cmd_surveys_answer, "answer as the logged-in customer")
    answer.add_argument("survey_id")
    answer.add_argument("--rating", type=int, required=True, choices=range(1, 6))
    answer.add_argument("--comment")

    followups = sub.add_parser("followups", help="follow-up tasks for managers")
    _add(
        followups.add_subparsers(required=True),
        "list",
        cmd_followups_list,
        "low-rated surveys to follow up, newest first",
    ).add_argument("--status", choices=["open", "done"])
