"""The managers' parked-messages API's bodies and views (`GET /parked`, `POST /parked/replay`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

ParkedSource = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,64}$")]
ParkedKey = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class ParkedRow(BaseModel):
    """One parked message: what was received, why it was parked, whether a replay can help
    (`replayable`, or `why_not`) and its replays so far."""

    model_config = ConfigDict(defer_build=True)

    source: str
    parked_key: str
    reason: str
    detail: str | None = None
    received_at: AwareDatetime
    thing: str | None = None
    payload: str = Field(description="an excerpt of the payload (at most 16 KiB)")
    payload_bytes: int | None = None
    payload_sha256: str | None = None
    replayable: bool
    why_not: str | None = Field(default=None, description="why a replay would not help")
    replay_count: int = 0
    replayed_at: AwareDatetime | None = None
    replayed_by: str | None = None
    replay_outcome: str | None = None
    replays: list[dict[str, Any]] = Field(default_factory=list)


class ReplayRequest(BaseModel):
    """Replay one parked message, named by its key (`source` + `parked_key` from the list)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    source: ParkedSource
    parked_key: ParkedKey
