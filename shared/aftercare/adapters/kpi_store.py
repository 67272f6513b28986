"""KpiTable on DynamoDB: merged facts, counters per dimension and day, dedup markers.

Access patterns (also beside the table in template.yaml):
  K1 counters of one dimension value over days       Query pk=AGG#<dim>#<value>, sk BETWEEN DAY#..
  K2 backlog of one dimension value (by opening day)  Query pk=AGG#<dim>#<value>, sk begins OPENED#
  K3 the values a dimension has taken (for `by=`)     Query pk=DIM#<dim>
  K4 a ticket's, visit's or booking's merged facts    GetItem pk=FACTS#<kind>#<id>, sk=FACTS
  K5 a stream record already counted                   conditional Put pk=DEDUP#<event>, sk=DEDUP

One stream record's facts go in ONE TransactWriteItems: the dedup marker (new, with a TTL), the
facts item (conditional on the version read) and an ADD per aggregate item the counters move
in. A redelivered record fails the marker's condition; a concurrent change of the same facts
fails the version's, and is read and merged again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.transactions import Failure, TxItem, cancelled, request_of
from aftercare.domain.kpi_events import (
    ChangeKind,
    booking_updates,
    entry_updates,
    ticket_updates,
    visit_updates,
)
from aftercare.domain.kpis import (
    DAY,
    OPENED,
    Contributions,
    contributions,
    counter_updates,
    difference,
    merge,
)
from aftercare.models.kpis import (
    BookingFacts,
    Counters,
    Facts,
    KpiDefinitions,
    KpiUpdate,
    TicketFacts,
    VisitFacts,
)

FACTS_SK = "FACTS"
DEDUP_SK = "DEDUP"
ATTEMPTS = 5
FACT_TYPES: dict[str, type[TicketFacts] | type[VisitFacts] | type[BookingFacts]] = {
    "TICKET": TicketFacts,
    "VISIT": VisitFacts,
    "BOOKING": BookingFacts,
}


# ---- stream records -> lifecycle events


def change_of(keys: Mapping[str, Any]) -> ChangeKind | None:
    """What a stream record's item is, from its key (None: nothing the KPIs read)."""
    pk, sk = str(keys.get("pk", "")), str(keys.get("sk", ""))
    if pk.startswith("TICKET#"):
        if sk == "META":
            return ChangeKind.TICKET
        if sk.startswith("EVT#"):
            return ChangeKind.ENTRY
        if sk.startswith("VISIT#"):
            return ChangeKind.VISIT
    if pk.startswith("BOOKING#") and sk == "META":
        return ChangeKind.BOOKING
    return None


def stream_updates(record: Mapping[str, Any], defs: KpiDefinitions) -> list[KpiUpdate]:
    """The lifecycle events one DynamoDB stream record carries (tickets or field table)."""
    data = record["dynamodb"]
    keys = from_item(data.get("Keys", {}))
    kind = change_of(keys)
    if kind is None:
        return []
    old = from_item(data["OldImage"]) if data.get("OldImage") else None
    new = from_item(data["NewImage"]) if data.get("NewImage") else None
    record_id = str(record.get("eventID") or data.get("SequenceNumber"))
    if kind is ChangeKind.TICKET:
        return ticket_updates(record_id, old, new, defs)
    if kind is ChangeKind.ENTRY:
        ticket_id = str(keys["pk"]).removeprefix("TICKET#")
        return entry_updates(record_id, ticket_id, new) if new and old is None else []
    if kind is ChangeKind.VISIT:
        return visit_updates(record_id, new)
    return booking_updates(record_id, new)


# ---- request builders


def facts_key(facts: Facts) -> dict[str, str]:
    if isinstance(facts, TicketFacts):
        name, ident = "TICKET", facts.ticket_id
    else:
        name, ident = ("VISIT" if isinstance(facts, VisitFacts) else "BOOKING"), facts.booking_id
    return {"pk": f"FACTS#{name}#{ident}", "sk": FACTS_SK}


def agg_key(dim: str, period: str) -> dict[str, str]:
    return {"pk": f"AGG#{dim}", "sk": period}


def apply_items(
    table: str,
    update: KpiUpdate,
    *,
    read_version: int | None,
    merged: Facts,
    diff: Contributions,
    now: datetime,
    ttl_days: int,
) -> list[TxItem]:
    """The marker, the facts (version-guarded) and the counter ADDs of one update."""
    marker = {
        "Put": {
            "TableName": table,
            "Item": to_item(
                {
                    "pk": f"DEDUP#{update.event_id}",
                    "sk": DEDUP_SK,
                    "kind": update.kind,
                    "at": now.isoformat(),
                    "expires_at": int((now + timedelta(days=ttl_days)).timestamp()),
                }
            ),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    version = (read_version or 0) + 1
    guard = (
        ("attribute_not_exists(pk)", {})
        if read_version is None
        else ("version = :read", {":read": to_attr(read_version)})
    )
    facts_put: dict[str, Any] = {
        "TableName": table,
        "Item": to_item(
            {
                **facts_key(merged),
                "facts": merged.model_dump_json(),
                "version": version,
                "updated_at": now.isoformat(),
            }
        ),
        "ConditionExpression": guard[0],
    }
    if guard[1]:
        facts_put["ExpressionAttributeValues"] = guard[1]
    items = [TxItem(marker, Failure.DUPLICATE), TxItem({"Put": facts_put}, Failure.STALE)]
    seen: set[str] = set()
    for (dim, period), counters in counter_updates(diff).items():
        items.append(TxItem({"Update": add_request(table, agg_key(dim, period), counters)}))
        if dim not in seen and not dim.startswith("all#"):
            seen.add(dim)
            name, value = dim.split("#", 1)
            items.append(
                TxItem({"Put": {"TableName": table, "Item": to_item(dim_item(name, value))}})
            )
    return items


def dim_item(name: str, value: str) -> dict[str, str]:
    return {"pk": f"DIM#{name}", "sk": value, "value": value}


def add_request(table: str, key: dict[str, str], counters: Counters) -> dict[str, Any]:
    names = {f"#c{i}": name for i, name in enumerate(counters)}
    values = {f":v{i}": to_attr(value) for i, value in enumerate(counters.values())}
    return {
        "TableName": table,
        "Key": to_item(key),
        "UpdateExpression": "ADD " + ", ".join(f"#c{i} :v{i}" for i in range(len(counters))),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


@dataclass(frozen=True)
class Applied:
    """What one update did: counted (the counter moves), or absorbed as a duplicate."""

    duplicate: bool
    diff: Contributions


class StaleFacts(RuntimeError):
    """The facts kept changing under us (another writer); the record is retried."""


class DynamoKpiStore:
    """Applies lifecycle events exactly once, and reads counters for the KPI API."""

    ddb = LazyClient("dynamodb")

    def __init__(self, *, table: str, defs: KpiDefinitions, ddb: Any = None) -> None:
        self.table = table
        self.defs = defs
        self._ddb = ddb

    def read_facts(self, facts: Facts) -> tuple[Facts | None, int | None]:
        item = self.ddb.get_item(
            TableName=self.table, Key=to_item(facts_key(facts)), ConsistentRead=True
        ).get("Item")
        if not item:
            return None, None
        data = from_item(item)
        kind = str(data["pk"]).split("#", 2)[1]
        return FACT_TYPES[kind].model_validate_json(data["facts"]), int(data["version"])

    def apply(self, update: KpiUpdate, now: datetime) -> Applied:
        for _ in range(ATTEMPTS):
            stored, version = self.read_facts(update.facts)
            merged = merge(stored, update.facts)
            diff = difference(contributions(stored, self.defs), contributions(merged, self.defs))
            items = apply_items(
                self.table,
                update,
                read_version=version,
                merged=merged,
                diff=diff,
                now=now,
                ttl_days=self.defs.dedup_ttl_days,
            )
            try:
                self.ddb.transact_write_items(**request_of(items))
                return Applied(duplicate=False, diff=diff)
            except ClientError as exc:
                outcome = cancelled(items, exc)
                if outcome is None or outcome.failure is None:
                    raise
                if outcome.failure is Failure.DUPLICATE:
                    return Applied(duplicate=True, diff={})
        raise StaleFacts(f"facts of {update.event_id} changed {ATTEMPTS} times while applying")

    # ---- reads (the KPI API)

    def counters(self, dim: str, first: date, last: date) -> list[dict[str, Any]]:
        """K1: one dimension value's counters, one row per day with events."""
        return self._query(
            "pk = :pk AND sk BETWEEN :a AND :b",
            {
                ":pk": f"AGG#{dim}",
                ":a": f"{DAY}#{first.isoformat()}",
                ":b": f"{DAY}#{last.isoformat()}",
            },
        )

    def backlog_rows(self, dim: str) -> dict[date, dict[str, Any]]:
        """K2: active tickets per opening day (and status)."""
        rows = self._query(
            "pk = :pk AND begins_with(sk, :p)", {":pk": f"AGG#{dim}", ":p": f"{OPENED}#"}
        )
        return {date.fromisoformat(str(r["sk"]).split("#", 1)[1]): r for r in rows}

    def dimension_values(self, name: str) -> list[str]:
        """K3: every value the dimension has been counted under."""
        return [str(r["sk"]) for r in self._query("pk = :pk", {":pk": f"DIM#{name}"})]

    def _query(self, condition: str, values: dict[str, str]) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
        rows: list[dict[str, Any]] = []
        while True:
            page = self.ddb.query(**request)
            rows += [from_item(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return rows
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
