"""Replaying parked messages: each one only to where it came from, only when a replay can help.

A parked message is evidence. Replaying sends a copy back to the queue its source reads from
(faults to the fault queue, diagnostics answers to the diagnostics result queue) and records the
replay on the parked item, which stays. What a replay cannot fix is skipped with the reason:
content the contract rejects is rejected again, and a rejected diagnostics answer (spoofed,
late, duplicate, unknown, or to a cancelled request) must stay as it was judged. Replaying twice
cannot count twice: fault intake is exactly-once per `(thing, fault_id)` and an answer settles
its request once.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from aftercare.domain.parking import CHANNELS, DIAGNOSTICS, FAULTS
from aftercare.domain.ports import ParkedArchive, Redelivery, ReplayFailed
from aftercare.models.payloads import FaultEnvelope

FAULT_QUEUE = FAULTS.queue
DIAGNOSTICS_QUEUE = DIAGNOSTICS.queue
RULE_ERROR_SOURCE = "iot-rules"  # parked by the IoT rules bridge itself; the topic says which

# parked by           -> the queue that source reads from (None: decided by the topic)
SOURCE_QUEUES: dict[str, str | None] = {
    **{c.source: c.queue for c in CHANNELS},
    **{c.dead_letter_source: c.queue for c in CHANNELS},
    RULE_ERROR_SOURCE: None,
}
# Reasons a replay can fix: the failure was the system's (retries exhausted, a rule action or
# its service failing), or the registry's (a device that was not registered yet).
REPLAYABLE = frozenset({"processing_failed_after_retries", "unknown_device"})
REPLAYABLE_PREFIXES = ("rule_error:",)


class ReplayPlan(BaseModel):
    """One parked message to send again: to which queue (a template logical id), what body."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    source: str
    parked_key: str
    queue: str
    body: str


class ReplaySkip(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    source: str
    parked_key: str
    reason: str
    why: str


def replayable(reason: str) -> bool:
    return reason in REPLAYABLE or reason.startswith(REPLAYABLE_PREFIXES)


def _queue_for_topic(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["dt", "aftercare"] and parts[3] == "fault":
        return FAULT_QUEUE
    if (
        len(parts) == 5
        and parts[:2] == ["cmd", "aftercare"]
        and parts[3:]
        == [
            "diagnostics",
            "res",
        ]
    ):
        return DIAGNOSTICS_QUEUE
    return None


def _from_rule_error(document: dict[str, Any], received_at: datetime) -> FaultEnvelope:
    """The envelope the topic rule would have delivered (its SQL: payload as base64, the thing
    and topic from the topic, IoT Core's receive time)."""
    topic = str(document.get("topic", ""))
    payload_b64 = str(document.get("base64OriginalPayload", ""))
    base64.b64decode(payload_b64, validate=True)  # binascii.Error when it is not
    return FaultEnvelope(
        payload_b64=payload_b64,
        thing=topic.split("/")[2],
        received_at=int(received_at.timestamp() * 1000),
        topic=topic,
    )


def plan_replay(item: dict[str, Any]) -> ReplayPlan | ReplaySkip:
    """What replaying one parked item means, decided from the item alone."""
    source, key, reason = str(item["source"]), str(item["parked_key"]), str(item["reason"])

    def skip(why: str) -> ReplaySkip:
        return ReplaySkip(source=source, parked_key=key, reason=reason, why=why)

    if source not in SOURCE_QUEUES:
        return skip(f"no replay route for source {source!r}")
    if not replayable(reason):
        return skip(
            f"{reason} is decided by the content or the record; a replay would not change it"
        )
    envelope = item.get("envelope")
    if not isinstance(envelope, dict):
        return skip(str(item.get("envelope_omitted") or "the original envelope was not kept"))
    topic = str(envelope.get("topic", ""))
    queue = SOURCE_QUEUES[source] or _queue_for_topic(topic)
    if queue is None or _queue_for_topic(topic) not in (None, queue):
        return skip(f"topic {topic!r} does not belong to {source!r}")
    try:
        if "failures" in envelope:
            received = datetime.fromisoformat(str(item["received_at"])).astimezone(UTC)
            body = _from_rule_error(envelope, received).model_dump_json()
        else:
            body = FaultEnvelope.model_validate(envelope).model_dump_json()
    except (ValidationError, ValueError, IndexError, binascii.Error) as exc:
        return skip(f"the kept envelope cannot be rebuilt: {str(exc)[:200]}")
    return ReplayPlan(source=source, parked_key=key, queue=queue, body=body)


def replay_event(
    by: str, outcome: str, now: datetime, message_id: str | None = None
) -> dict[str, Any]:
    """One entry of a parked item's replay history."""
    event: dict[str, Any] = {"at": now.isoformat(), "by": by, "outcome": outcome}
    if message_id:
        event["message_id"] = message_id
    return event


class ReplayOutcome(BaseModel):
    """What one replay did: `replayed` (sent to `queue`), `skipped` or `failed` (`why`)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    source: str
    parked_key: str
    reason: str
    outcome: Literal["replayed", "skipped", "failed"]
    queue: str | None = None
    why: str = ""


def replay_parked(
    item: dict[str, Any],
    archive: ParkedArchive,
    redelivery: Redelivery,
    *,
    explicit: bool,
    by: str,
    now: datetime,
) -> ReplayOutcome:
    """Replay one parked item (the CLI's `dlq replay` and the managers' API both do it here).

    Skipped with the reason when a replay cannot fix it, and when it was replayed before
    unless it is named (`explicit`); every send, sent or failed, is recorded on the item."""
    item = archive.with_envelope(item)
    plan = plan_replay(item)
    source, key, reason = str(item["source"]), str(item["parked_key"]), str(item["reason"])

    def outcome(what: Literal["replayed", "skipped", "failed"], **rest: Any) -> ReplayOutcome:
        return ReplayOutcome(source=source, parked_key=key, reason=reason, outcome=what, **rest)

    if isinstance(plan, ReplaySkip):
        return outcome("skipped", why=plan.why)
    if item.get("replay_count") and not explicit:
        why = f"replayed before ({item.get('replayed_at')}); name its key to replay it again"
        return outcome("skipped", why=why)
    try:
        message_id = redelivery.send(plan.queue, plan.body)
    except ReplayFailed as exc:
        archive.record_replay(source, key, replay_event(by, f"failed: {exc}", now))
        return outcome("failed", why=str(exc))
    archive.record_replay(source, key, replay_event(by, f"sent to {plan.queue}", now, message_id))
    return outcome("replayed", queue=plan.queue)
