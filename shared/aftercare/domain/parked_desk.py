"""The managers' desk for parked messages: what was parked, whether a replay can help, and
replaying one named message (through `replay_parked`, the same code as `aftercare dlq replay`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftercare.domain.access import Caller
from aftercare.domain.ports import ParkedArchive, Redelivery, ReplayFailed
from aftercare.domain.replay import (
    SOURCE_QUEUES,
    ReplayOutcome,
    ReplaySkip,
    plan_replay,
    replay_parked,
    replayable,
)
from aftercare.models.parked_api import ParkedRow

MAX_ROWS = 500


class ParkedNotFound(LookupError):
    """No parked message has that key."""


class NotReplayable(ValueError):
    """A replay of this message would not change what happened to it."""


def why_not_replayable(item: dict[str, Any]) -> str | None:
    """None when a replay can help; else why not. An envelope kept in the bucket is not read
    for a listing: the source and reason decide, and the replay itself reads it."""
    if item.get("envelope_ref") and not item.get("envelope"):
        source, reason = str(item["source"]), str(item["reason"])
        if source not in SOURCE_QUEUES:
            return f"no replay route for source {source!r}"
        return None if replayable(reason) else f"{reason} is decided by the content or record"
    plan = plan_replay(item)
    return plan.why if isinstance(plan, ReplaySkip) else None


def parked_rows(
    archive: ParkedArchive,
    caller: Caller,
    *,
    source: str | None = None,
    reason: str | None = None,
    limit: int = MAX_ROWS,
) -> list[ParkedRow]:
    """The newest `limit` parked messages, optionally from one source and/or with a reason
    starting with `reason` (managers)."""
    caller.require_manager("see parked messages")
    rows = []
    for item in archive.list():
        if source is not None and item.get("source") != source:
            continue
        if reason is not None and not str(item.get("reason")).startswith(reason):
            continue
        why = why_not_replayable(item)
        rows.append(ParkedRow.model_validate({**item, "replayable": why is None, "why_not": why}))
        if len(rows) == limit:
            break
    return rows


def replay_named(
    archive: ParkedArchive,
    redelivery: Redelivery,
    caller: Caller,
    *,
    source: str,
    parked_key: str,
    now: datetime,
) -> ReplayOutcome:
    """Replay one message a manager named (again, if it was replayed before); the replay is
    recorded on the item with who asked."""
    caller.require_manager("replay parked messages")
    item = archive.get(source, parked_key)
    if item is None:
        raise ParkedNotFound(f"nothing parked from {source!r} as {parked_key!r}")
    outcome = replay_parked(item, archive, redelivery, explicit=True, by=caller.actor, now=now)
    if outcome.outcome == "skipped":
        raise NotReplayable(outcome.why)
    if outcome.outcome == "failed":
        raise ReplayFailed(outcome.why)
    return outcome
