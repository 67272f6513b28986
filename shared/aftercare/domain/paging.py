"""Paged ticket listings: the query, the page, and the opaque cursor between pages.

Listings are newest first, in the order of the tickets table's indexes: `opened_key`
(`<opened_at>#<ticket_id>`, unique per ticket). A listing may span several index partitions
(one per status for staff without a filter, one per device for a customer); each partition is
queried newest first *below the cursor's key* and the results are merged. So the cursor only
needs the `opened_key` of the last ticket returned: the next page is every partition's
tickets strictly older than that. This keyset cursor is what a per-partition
`LastEvaluatedKey` would hold (its sort key), but one key serves any number of partitions
and never skips or repeats a ticket whose position has not changed.

On the wire the cursor is base64url (no padding) of compact JSON
`{"v": 1, "after": <opened_key>, "status": ..., "thing": ..., "filters": {...}}` (`filters`:
the `TicketFilters` given; a cursor issued before it existed has none). The filters are bound
into it, so a cursor replayed with other filters, edited, or made up is an `InvalidCursor`
(400), never a server error. A cursor grants nothing: it only positions a listing the caller
may run anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from aftercare.domain.tickets import Ticket

MAX_PAGE = 200
MAX_CURSOR_CHARS = 512
CURSOR_VERSION = 1
OPENED_KEY = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})#[A-Za-z0-9_-]{1,64}$"
)
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")

OpenedKey = Annotated[str, StringConstraints(pattern=OPENED_KEY.pattern)]


class InvalidCursor(ValueError):
    """A cursor this API did not issue for this listing."""


class TicketFilters(BaseModel):
    """Narrowing filters of a listing, applied within the partitions the listing reads (a
    DynamoDB filter: they cut what is returned, not what is read). Times are the stored JSON
    rendering of a UTC instant (`stored_time`), so they compare as strings.

    - `priority`, `region`: equal to the ticket's
    - `sla_due_before`: the ticket's resolution SLA (`sla_resolution_due`) is before it
    - `updated_since`: the ticket changed (`updated_at`) at or after it (polling for updates)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    priority: str | None = None
    region: str | None = None
    sla_due_before: str | None = None
    updated_since: str | None = None

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


def stored_time(at: datetime) -> str:
    """An instant as ticket items store it (pydantic's JSON rendering in UTC: `...Z`)."""
    return _Instant(at=at.astimezone(UTC)).model_dump(mode="json")["at"]


class _Instant(BaseModel):
    model_config = ConfigDict(defer_build=True)

    at: AwareDatetime


class TicketQuery(BaseModel):
    """One page of a listing: `things` None means every device (staff only); `customer_id`
    limits it to the tickets opened for that customer (with `things`, on those devices)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    status: str | None = None
    filters: TicketFilters = Field(default_factory=TicketFilters)
    things: tuple[str, ...] | None = None
    customer_id: str | None = None  # a customer's own tickets (any device, current or former)
    after: OpenedKey | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)]


class TicketPage(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    tickets: list[Ticket]
    next_after: str | None = Field(default=None, description="opened_key of the last ticket")


def newest_page(candidates: Sequence[tuple[str, Ticket]], limit: int) -> TicketPage:
    """Merge (opened_key, ticket) pairs from several partitions into one page, newest first.
    Every partition must have contributed up to `limit + 1` of its newest tickets."""
    ordered = sorted(candidates, key=lambda pair: pair[0], reverse=True)
    page = ordered[:limit]
    more = len(ordered) > limit
    return TicketPage(
        tickets=[t for _, t in page], next_after=page[-1][0] if more and page else None
    )


class _Cursor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    v: int
    after: OpenedKey
    status: str | None
    thing: str | None
    filters: dict[str, str] = Field(default_factory=dict)  # TicketFilters.given(); absent: none


def encode_cursor(
    after: str, *, status: str | None, thing: str | None, filters: TicketFilters | None = None
) -> str:
    given = filters.given() if filters else {}
    data = _Cursor(v=CURSOR_VERSION, after=after, status=status, thing=thing, filters=given)
    text = json.dumps(data.model_dump(), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str, *, status: str | None, thing: str | None, filters: TicketFilters | None = None
) -> str:
    """The `after` key of a cursor issued for a listing with these filters."""
    if len(cursor) > MAX_CURSOR_CHARS or not BASE64URL.match(cursor):
        raise InvalidCursor("the cursor is not one this API issued")
    try:
        raw: Any = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        data = _Cursor.model_validate(raw)
    except (binascii.Error, ValueError, ValidationError) as exc:
        raise InvalidCursor("the cursor is not one this API issued") from exc
    if data.v != CURSOR_VERSION:
        raise InvalidCursor("the cursor is from another version of this API")
    given = filters.given() if filters else {}
    if (data.status, data.thing, data.filters) != (status, thing, given):
        raise InvalidCursor("the cursor belongs to a listing with other filters")
    return data.after
