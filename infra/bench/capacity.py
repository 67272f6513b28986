"""DynamoDB capacity units of recorded requests, computed from item sizes by AWS's rules.

moto answers `ReturnConsumedCapacity` with fixed figures (1 unit per write, 0.5 per read,
whatever the size), so the units here are computed from the recorded requests and responses
(wire-format DynamoDB JSON) by the on-demand billing rules:

- item size: attribute names' UTF-8 bytes + values (string: UTF-8 bytes; number: 1 byte per
  two significant digits + 1; binary: bytes; bool/null: 1; list/map: 3 + 1 per element +
  elements; sets: their elements);
- a write: 1 unit per started KB of the item; in a transaction, 2 per started KB for every
  action (ConditionCheck included); a write whose condition fails still costs its units;
- a read: 1 unit per started 4 KB when strongly consistent, 0.5 when eventually consistent,
  2 in a transaction; a Get/BatchGet of a missing item costs the minimum; a Query or Scan costs
  the started 4 KB of everything it returned together (a filter's dropped items are not seen).

Updates and deletes do not carry the item: the caller passes `final_size`, the size of the item
read back after the scenario (None when it no longer exists: then the minimum unit).

Global secondary index writes (AWS: "Provisioned throughput considerations for global secondary
indexes"), from the item before and after each write (the recorded `images`, see
`infra.bench.capture`) and the template's index definitions (`TableIndexes.from_template`):

- an index entry exists when the item has all of the index's key attributes; it holds the
  table's key, the index's key and the projected attributes (ALL: the whole item; KEYS_ONLY:
  the keys; INCLUDE: the keys and the listed NonKeyAttributes the item has), sized like an item;
- an entry put (new item, or the index key newly set) costs 1 WRU per started KB of the new
  entry; an entry deleted (item deleted, or an index key removed) 1 WRU per started KB of the
  old entry; an index key changed (A -> B) costs both, a delete and a put; an entry whose
  projected attributes changed (keys unchanged) is rewritten: 1 WRU per started KB of the new
  entry; an entry unchanged, or an item in the index neither before nor after, costs nothing;
- index writes are standard writes, also when the table write is transactional (the 2x applies
  to the table's write), and a write that failed (its condition) writes no index entry.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
FinalSize = Callable[[str, Mapping[str, Any]], int | None]


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one wire-format attribute value."""
    (kind, raw), *_ = value.items()
    sizes: dict[str, Callable[[Any], int]] = {
        "S": lambda v: len(v.encode()),
        "N": _number_size,
        "B": lambda v: len(base64.b64decode(v)) if isinstance(v, str) else len(v),
        "BOOL": lambda _: 1,
        "NULL": lambda _: 1,
        "SS": lambda v: sum(len(s.encode()) for s in v),
        "NS": lambda v: sum(_number_size(n) for n in v),
        "BS": lambda v: sum(len(base64.b64decode(b)) for b in v),
        "L": lambda v: 3 + sum(1 + value_size(e) for e in v),
        "M": lambda v: 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in v.items()),
    }
    return sizes[kind](raw)


def _number_size(text: str) -> int:
    try:
        digits = Decimal(text).normalize().as_tuple().digits
    except InvalidOperation:
        return len(text)
    return math.ceil(len(digits) / 2) + 1


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of a wire-format item, as DynamoDB bills it."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int, *, transactional: bool = False) -> float:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES)) * (2 if transactional else 1)


def read_units(size: int, *, consistent: bool = False, transactional: bool = False) -> float:
    blocks = max(1, math.ceil(size / READ_UNIT_BYTES))
    if transactional:
        return blocks * 2.0
    return blocks * (1.0 if consistent else 0.5)


@dataclass(frozen=True)
class IndexSpec:
    """One global secondary index as the template defines it."""

    name: str
    keys: tuple[str, ...]  # the index's HASH [, RANGE] attribute names
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    non_key: tuple[str, ...] = ()  # INCLUDE's NonKeyAttributes

    def entry(self, table_keys: Iterable[str], image: Mapping[str, Any] | None) -> dict[str, Any]:
        """The index entry an item image makes ({} when the item is not in the index)."""
        if not image or any(key not in image for key in self.keys):
            return {}
        if self.projection == "ALL":
            return dict(image)
        kept = {*table_keys, *self.keys, *(self.non_key if self.projection == "INCLUDE" else ())}
        return {name: value for name, value in image.items() if name in kept}

    def write_units(
        self,
        table_keys: Iterable[str],
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
    ) -> float:
        """WRU this index consumes for one item going from `old` to `new` (see the docstring)."""
        before, after = self.entry(table_keys, old), self.entry(table_keys, new)
        if before == after:
            return 0.0
        if not before:
            return write_units(item_size(after))
        if not after:
            return write_units(item_size(before))
        if any(before[key] != after[key] for key in self.keys):
            return write_units(item_size(before)) + write_units(item_size(after))
        return write_units(item_size(after))


@dataclass(frozen=True)
class TableIndexes:
    """Each table's key attributes and global secondary indexes, by table name pattern (the
    template's `!Sub aftercare-tickets-${Stage}` matches `aftercare-tickets-local`)."""

    tables: Mapping[str, tuple[tuple[str, ...], tuple[IndexSpec, ...]]]

    def of(self, table: str) -> tuple[tuple[str, ...], tuple[IndexSpec, ...]]:
        for pattern, found in self.tables.items():
            if fnmatch.fnmatchcase(table, pattern):
                return found
        return (), ()

    @classmethod
    def from_template(cls, path: Path) -> TableIndexes:
        class Loader(yaml.SafeLoader):
            pass

        def tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
            return loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None

        Loader.add_multi_constructor("!", tag)
        template = yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass
        tables = {}
        for resource in template["Resources"].values():
            props = resource.get("Properties") or {}
            name = props.get("TableName")
            if resource.get("Type") != "AWS::DynamoDB::Table" or not isinstance(name, str):
                continue
            indexes = tuple(
                IndexSpec(
                    name=index["IndexName"],
                    keys=tuple(k["AttributeName"] for k in index["KeySchema"]),
                    projection=index["Projection"]["ProjectionType"],
                    non_key=tuple(index["Projection"].get("NonKeyAttributes") or ()),
                )
                for index in props.get("GlobalSecondaryIndexes") or []
            )
            keys = tuple(k["AttributeName"] for k in props["KeySchema"])
            tables[re.sub(r"\$\{[^}]*\}", "*", name)] = (keys, indexes)
        return cls(tables)


@dataclass
class Units:
    """Read and write units and requests, per table."""

    reads: dict[str, float] = field(default_factory=dict)
    writes: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    moto_reported: float = 0.0  # what moto's ConsumedCapacity said, for comparison only
    gsi_writes: dict[str, float] = field(default_factory=dict)  # "<table>/<index>" -> WRU

    def read(self, table: str, units: float) -> None:
        self.reads[table] = self.reads.get(table, 0.0) + units

    def write(self, table: str, units: float) -> None:
        self.writes[table] = self.writes.get(table, 0.0) + units

    def gsi_write(self, table: str, index: str, units: float) -> None:
        name = f"{table}/{index}"
        self.gsi_writes[name] = self.gsi_writes.get(name, 0.0) + units

    @property
    def gsi_write_total(self) -> float:
        return sum(self.gsi_writes.values())

    def count(self, operation: str) -> None:
        self.requests[operation] = self.requests.get(operation, 0) + 1

    @property
    def read_total(self) -> float:
        return sum(self.reads.values())

    @property
    def write_total(self) -> float:
        return sum(self.writes.values())

    def as_dict(self, per: float = 1.0) -> dict[str, Any]:
        """Totals divided by `per` (e.g. the number of faults)."""
        return {
            "read_units": round(self.read_total / per, 3),
            "write_units": round(self.write_total / per, 3),
            "requests": {op: round(n / per, 3) for op, n in sorted(self.requests.items())},
            "moto_reported_units": round(self.moto_reported / per, 3),
            "read_units_by_table": {t: round(u / per, 3) for t, u in sorted(self.reads.items())},
            "write_units_by_table": {t: round(u / per, 3) for t, u in sorted(self.writes.items())},
            "gsi_write_units": round(self.gsi_write_total / per, 3),
            "gsi_write_units_by_index": {
                i: round(u / per, 3) for i, u in sorted(self.gsi_writes.items()) if u
            },
        }


def key_text(key: Mapping[str, Any]) -> str:
    """A stable name for a wire-format key (to look final sizes up)."""
    return json.dumps(key, sort_keys=True)


def add_record(
    units: Units,
    record: Mapping[str, Any],
    final_size: FinalSize,
    indexes: TableIndexes | None = None,
) -> None:
    """Add one recorded request's units (see the module docstring for the rules); with
    `indexes`, the index writes of its recorded `images` too."""
    op = record["op"]
    request = record["request"]
    response = record.get("response") or {}
    units.count(op)
    units.moto_reported += reported_units(response)
    handler = _HANDLERS.get(op)
    if handler is not None:
        handler(units, request, response, final_size)
    if indexes is not None and record.get("status", 200) == 200:
        add_index_writes(units, record.get("images") or [], indexes)


def add_index_writes(
    units: Units, images: Iterable[Mapping[str, Any]], indexes: TableIndexes
) -> None:
    """Each written item's index writes, from its images before and after the write."""
    for image in images:
        table_keys, specs = indexes.of(image["table"])
        for spec in specs:
            spent = spec.write_units(table_keys, image.get("old"), image.get("new"))
            units.gsi_write(image["table"], spec.name, spent)


def reported_units(response: Mapping[str, Any]) -> float:
    """The CapacityUnits of a response's ConsumedCapacity (one entry or a list)."""
    consumed = response.get("ConsumedCapacity") or []
    entries = [consumed] if isinstance(consumed, Mapping) else consumed
    return float(sum(entry.get("CapacityUnits", 0.0) for entry in entries))


def _sized(table: str, key: Mapping[str, Any], final_size: FinalSize) -> int:
    return final_size(table, key) or 0


def _get(units: Units, request: Any, response: Any, _: FinalSize) -> None:
    size = item_size(response.get("Item") or {})
    units.read(
        request["TableName"], read_units(size, consistent=bool(request.get("ConsistentRead")))
    )


def _batch_get(units: Units, request: Any, response: Any, _: FinalSize) -> None:
    for table, ask in request["RequestItems"].items():
        found = (response.get("Responses") or {}).get(table, [])
        consistent = bool(ask.get("ConsistentRead"))
        for item in found:
            units.read(table, read_units(item_size(item), consistent=consistent))
        missing = max(0, len(ask["Keys"]) - len(found))
        units.read(table, missing * read_units(0, consistent=consistent))


def _query(units: Units, request: Any, response: Any, _: FinalSize) -> None:
    size = sum(item_size(item) for item in response.get("Items") or [])
    units.read(
        request["TableName"], read_units(size, consistent=bool(request.get("ConsistentRead")))
    )


def _transact_get(units: Units, request: Any, response: Any, _: FinalSize) -> None:
    found = [r.get("Item") or {} for r in response.get("Responses") or []]
    for index, action in enumerate(request["TransactItems"]):
        item = found[index] if index < len(found) else {}
        units.read(action["Get"]["TableName"], read_units(item_size(item), transactional=True))


def _put(units: Units, request: Any, _response: Any, _: FinalSize) -> None:
    units.write(request["TableName"], write_units(item_size(request["Item"])))


def _keyed_write(units: Units, request: Any, _response: Any, final_size: FinalSize) -> None:
    table = request["TableName"]
    units.write(table, write_units(_sized(table, request["Key"], final_size)))


def _batch_write(units: Units, request: Any, _response: Any, final_size: FinalSize) -> None:
    for table, writes in request["RequestItems"].items():
        for write in writes:
            if "PutRequest" in write:
                size = item_size(write["PutRequest"]["Item"])
            else:
                size = _sized(table, write["DeleteRequest"]["Key"], final_size)
            units.write(table, write_units(size))


def _transact_write(units: Units, request: Any, _response: Any, final_size: FinalSize) -> None:
    for action in request["TransactItems"]:
        (kind, body), *_ = action.items()
        table = body["TableName"]
        put = kind == "Put"
        size = item_size(body["Item"]) if put else _sized(table, body["Key"], final_size)
        units.write(table, write_units(size, transactional=True))


_HANDLERS: dict[str, Callable[[Units, Any, Any, FinalSize], None]] = {
    "GetItem": _get,
    "BatchGetItem": _batch_get,
    "Query": _query,
    "Scan": _query,
    "TransactGetItems": _transact_get,
    "PutItem": _put,
    "UpdateItem": _keyed_write,
    "DeleteItem": _keyed_write,
    "BatchWriteItem": _batch_write,
    "TransactWriteItems": _transact_write,
}


def keys_to_size(records: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(table, key_text) of every item an update, delete or condition check touched: the items
    whose size must be read back."""
    wanted = set()
    for record in records:
        request = record["request"]
        if record["op"] in ("UpdateItem", "DeleteItem"):
            wanted.add((request["TableName"], key_text(request["Key"])))
        for action in (
            request.get("TransactItems", []) if record["op"] == "TransactWriteItems" else []
        ):
            (_kind, body), *_ = action.items()
            if "Key" in body:
                wanted.add((body["TableName"], key_text(body["Key"])))
        for table, writes in (
            (request.get("RequestItems") or {}).items() if record["op"] == "BatchWriteItem" else []
        ):
            for write in writes:
                if "DeleteRequest" in write:
                    wanted.add((table, key_text(write["DeleteRequest"]["Key"])))
    return wanted


def units_of(
    records: Iterable[Mapping[str, Any]],
    final_size: FinalSize,
    indexes: TableIndexes | None = None,
) -> Units:
    units = Units()
    for record in records:
        add_record(units, record, final_size, indexes)
    return units
