"""KpiTable on DynamoDB: merged facts, counters per dimension and day, dedup markers.

Access patterns (also beside the table in template.yaml):
  K1 counters of one dimension value over days       Query pk=AGG#<dim>#<value>, sk BETWEEN DAY#..
  K2 backlog of one dimension value (by opening day)  Query pk=AGG#<dim>#<value>, sk begins OPENED#
  K3 the values a dimension has taken (for `by=`)     Query pk=DIM#<dim>
  K4 a ticket's, visit's or booking's merged facts    GetItem pk=FACTS#<kind>#<id>, sk=FACTS

A batch's events are grouped by subject (ticket, visit, booking): each subject's facts are read
once, all its events merged into them, and the counters' difference computed once. The changed
subjects go in chunks to ONE TransactWriteItems each (at most 100 items): every subject's facts
(conditional on the version read) and one ADD per aggregate item, summed over the chunk. No
dedup marker: the merge is idempotent, so a redelivered event changes no fact and is not
written at all, and a concurrent writer fails a version guard, which cancels the chunk; its
subjects are then read, merged and written one by one (each with its own counters).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
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
ATTEMPTS = 5
MAX_TX_ITEMS = 100  # TransactWriteItems' limit; 100 facts items stay far below its 4 MB
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


def facts_item(table: str, merged: Facts, *, read_version: int | None, now: datetime) -> TxItem:
    """The merged facts, conditional on the version read (new: on there being none)."""
    put: dict[str, Any] = {
        "TableName": table,
        "Item": to_item(
            {
                **facts_key(merged),
                "facts": merged.model_dump_json(),
                "version": (read_version or 0) + 1,
                "updated_at": now.isoformat(),
            }
        ),
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    if read_version is not None:
        put["ConditionExpression"] = "version = :read"
        put["ExpressionAttributeValues"] = {":read": to_attr(read_version)}
    return TxItem({"Put": put}, Failure.STALE)


def counter_items(
    table: str, diff: Contributions, known: frozenset[str] = frozenset()
) -> list[TxItem]:
    """One ADD per aggregate item the (summed) difference moves, and each dimension value not
    `known` (already listed) once."""
    items: list[TxItem] = []
    seen: set[str] = set(known)
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


@dataclass
class Subject:
    """One ticket's, visit's or booking's events in a batch, merged into its facts once."""

    updates: list[KpiUpdate]
    stored: Facts | None = None
    version: int | None = None
    merged: Facts | None = None
    diff: Contributions = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.merged != self.stored


@dataclass
class Applied:
    """What a batch did: the counters' movement, the events that changed nothing (redeliveries,
    overtaken changes), and the events of subjects that could not be written (retried)."""

    diff: Contributions = field(default_factory=dict)
    absorbed: int = 0
    failed: list[KpiUpdate] = field(default_factory=list)

    def add(self, subject: Subject) -> None:
        if not subject.changed:
            self.absorbed += len(subject.updates)
        for key, value in subject.diff.items():
            self.diff[key] = self.diff.get(key, 0) + value


def by_subject(updates: Iterable[KpiUpdate]) -> list[Subject]:
    """The updates grouped by the facts item they merge into (first-seen order)."""
    groups: dict[str, list[KpiUpdate]] = {}
    for update in updates:
        groups.setdefault(facts_key(update.facts)["pk"], []).append(update)
    return [Subject(updates=group) for group in groups.values()]


def chunks(
    table: str, subjects: list[Subject], now: datetime, known: frozenset[str]
) -> Iterator[list[Subject]]:
    """Changed subjects in runs whose facts and summed counter items fit one transaction."""
    run: list[Subject] = []
    for subject in subjects:
        if run and len(chunk_items(table, [*run, subject], now, known)) > MAX_TX_ITEMS:
            yield run
            run = []
        run.append(subject)
    if run:
        yield run


def chunk_items(
    table: str, subjects: list[Subject], now: datetime, known: frozenset[str] = frozenset()
) -> list[TxItem]:
    """Each subject's facts (version-guarded) and one ADD per counter item, summed over them."""
    summed: Contributions = {}
    items: list[TxItem] = []
    for subject in subjects:
        assert subject.merged is not None
        items.append(facts_item(table, subject.merged, read_version=subject.version, now=now))
        for key, value in subject.diff.items():
            summed[key] = summed.get(key, 0) + value
    return items + counter_items(table, {k: v for k, v in summed.items() if v}, known)


class DynamoKpiStore:
    """Applies lifecycle events exactly once, and reads counters for the KPI API."""

    ddb = LazyClient("dynamodb")

    def __init__(self, *, table: str, defs: KpiDefinitions, ddb: Any = None) -> None:
        self.table = table
        self.defs = defs
        self._ddb = ddb
        # Dimension values this process has listed (K3): the DIM# put is idempotent, so a warm
        # aggregator writes each once, not once per batch.
        self.listed: set[str] = set()

    def read_facts(self, facts: Facts) -> tuple[Facts | None, int | None]:
        item = self.ddb.get_item(
            TableName=self.table, Key=to_item(facts_key(facts)), ConsistentRead=True
        ).get("Item")
        if not item:
            return None, None
        data = from_item(item)
        kind = str(data["pk"]).split("#", 2)[1]
        return FACT_TYPES[kind].model_validate_json(data["facts"]), int(data["version"])

    def plan(self, subject: Subject) -> Subject:
        """Read the subject's facts, merge all its events once, and the counters' difference."""
        stored, version = self.read_facts(subject.updates[0].facts)
        merged = stored
        for update in subject.updates:
            merged = merge(merged, update.facts)
        diff = difference(contributions(stored, self.defs), contributions(merged, self.defs))
        return Subject(subject.updates, stored, version, merged, diff)

    def apply(self, updates: Iterable[KpiUpdate], now: datetime) -> Applied:
        """Apply a batch's events: one transaction per chunk of subjects (their facts and the
        summed counters); a chunk cancelled by a version conflict is applied subject by subject."""
        applied = Applied()
        planned = [self.plan(subject) for subject in by_subject(updates)]
        for subject in planned:
            if not subject.changed:
                applied.add(subject)  # nothing new: a redelivery, or a change overtaken
        known = frozenset(self.listed)
        for run in chunks(self.table, [s for s in planned if s.changed], now, known):
            if self._write(chunk_items(self.table, run, now, known)):
                for subject in run:
                    applied.add(subject)
            else:
                for subject in run:
                    self._apply_alone(subject, now, applied)
        return applied

    def _write(self, items: list[TxItem]) -> bool:
        """One transaction; False when it was cancelled (a version guard failed, a conflict)."""
        try:
            self.ddb.transact_write_items(**request_of(items))
        except ClientError as exc:
            if cancelled(items, exc) is None:
                raise
            return False
        for item in items:
            listed = from_item(item.request.get("Put", {}).get("Item", {}))
            if str(listed.get("pk", "")).startswith("DIM#"):
                self.listed.add(f"{str(listed['pk']).removeprefix('DIM#')}#{listed['sk']}")
        return True

    def _apply_alone(self, subject: Subject, now: datetime, applied: Applied) -> None:
        for _ in range(ATTEMPTS):
            subject = self.plan(subject)
            if not subject.changed:
                applied.add(subject)
                return
            if self._write(chunk_items(self.table, [subject], now, frozenset(self.listed))):
                applied.add(subject)
                return
        applied.failed += subject.updates

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

    def daily_counters(self, dim: str, first: date, last: date) -> dict[date, dict[str, Any]]:
        """K1 keyed by day (`sk` is `DAY#<date>`): one query for a whole trend."""
        rows = self.counters(dim, first, last)
        return {date.fromisoformat(str(r["sk"]).removeprefix(f"{DAY}#")): r for r in rows}

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
