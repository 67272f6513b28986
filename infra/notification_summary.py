"""The notification part of the demo summary, from the stack's own NotificationsTable:
messages by channel and kind, fault -> first notification latency, surveys and CSAT."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from aftercare.adapters.notification_reports import NotificationReports

from infra.stores import notification_store_of
from infra.target import Target


def csat_view(store: NotificationReports) -> dict[str, Any]:
    csat = store.csat()
    score = csat.score
    return {
        "answered": csat.answered,
        "satisfied": csat.satisfied,
        "csat": round(score, 4) if score is not None else None,
        "ratings": csat.ratings,
    }


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
    store = notification_store_of(target)
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
