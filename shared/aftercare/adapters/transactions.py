"""TransactWriteItems whose items say what their own failure means.

Each item is built together with its meaning (`Failure`): the lock put is `LOCK_TAKEN`, the
dedup marker `DUPLICATE`, a conditional stock update `OUT_OF_STOCK`, a version-guarded ticket
update `STALE`. When DynamoDB cancels the transaction, its cancellation reasons (one per item,
in order) are read against the items, so a failure is identified by which item failed and
why, never by the item's position or by the text of its condition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import from_item

CONDITION_FAILED = "ConditionalCheckFailed"


class Failure(IntEnum):
    """What a failed condition means; when several items fail, the lowest value is the news."""

    INACTIVE = 0  # what the change is for is closed (a ticket no longer active)
    DUPLICATE = 1  # the thing was already done (a dedup marker, or the ticket a fault opened)
    LOCK_TAKEN = 2  # an invariant key is held by someone else
    STALE = 3  # the record moved on since it was read (version, status)
    OUT_OF_STOCK = 4  # a stock change would leave fewer available than needed
    TICKET_MOVED = 5  # the ticket a calendar write carries moved on since it was read


@dataclass(frozen=True)
class TxItem:
    """One TransactItems entry and what its condition failing means (None: no condition)."""

    request: dict[str, Any]
    on_failure: Failure | None = None


@dataclass(frozen=True)
class Cancelled:
    """A cancelled transaction, read against its items."""

    failure: Failure | None  # the most telling failed condition; None: a conflict, no condition
    old: dict[str, Any] = field(default_factory=dict)  # that item's old image, when returned
    codes: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return ", ".join(self.codes)


def request_of(items: Iterable[TxItem]) -> dict[str, Any]:
    return {"TransactItems": [item.request for item in items]}


def requests_of(items: Iterable[TxItem]) -> list[dict[str, Any]]:
    return [item.request for item in items]


def cancellation_codes(exc: ClientError) -> list[str]:
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code") or "None") for r in reasons]


def cancelled(items: Sequence[TxItem], exc: ClientError) -> Cancelled | None:
    """The failure the cancellation reasons name, or None when it was no cancellation."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = exc.response.get("CancellationReasons") or []
    codes = tuple(str(r.get("Code") or "None") for r in reasons)
    failed = [
        (item.on_failure, reason)
        for item, reason in zip(items, reasons, strict=False)
        if reason.get("Code") == CONDITION_FAILED and item.on_failure is not None
    ]
    if not failed:
        return Cancelled(failure=None, codes=codes)
    failure, reason = min(failed, key=lambda pair: pair[0])
    return Cancelled(failure=failure, old=from_item(reason.get("Item") or {}), codes=codes)


def transact(
    ddb: Any, items: Sequence[TxItem], translate: Callable[[Cancelled], Exception]
) -> None:
    """Write `items` in one transaction; a cancellation becomes `translate`'s domain error."""
    try:
        ddb.transact_write_items(**request_of(items))
    except ClientError as exc:
        outcome = cancelled(items, exc)
        if outcome is None:
            raise
        raise translate(outcome) from exc
