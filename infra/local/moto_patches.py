"""Fixes to moto's behaviour that the local stack depends on.

moto's ``transact_write_items`` deep-copies every table a transaction touches (to roll back on
failure), so each transaction costs time proportional to the table's size: after a few thousand
tickets a single fault took seconds. DynamoDB evaluates all of a transaction's conditions
against the state before the transaction, so the replacement checks every condition first and
writes only if all pass, keeping copies of just the touched items to undo a write that fails
validation half-way. This is only correct because the local moto server serves one request at
a time (`infra.local.motoserver`).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodbstreams.models import DynamoDBStreamsBackend

OPERATIONS = ("ConditionCheck", "Put", "Delete", "Update")
Failure = tuple[str | None, str | None, dict[str, Any] | None]


def _key_of(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _check(backend: DynamoDBBackend, op: dict[str, Any], key: dict[str, Any]) -> Failure:
    expression = op.get("ConditionExpression")
    if expression is None:
        return (None, None, None)
    current = backend.get_item(op["TableName"], key)
    condition = get_filter_expression(
        expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    )
    if condition.expr(current):
        return (None, None, None)
    wants_old = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
    old = current.to_json()["Attributes"] if wants_old and current else None
    return ("ConditionalCheckFailed", ConditionalCheckFailed().message, old)


def _parse(
    backend: DynamoDBBackend, transact_items: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    parsed = []
    seen: set[tuple[str, str]] = set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException()
        op_type, op = next(iter(item.items()))
        if op_type not in OPERATIONS:
            raise MockValidationException(f"Unsupported transaction operation {op_type}")
        key = _key_of(backend, op_type, op)
        identity = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        parsed.append((op_type, op, key))
    return parsed


def _write(backend: DynamoDBBackend, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    table = op["TableName"]
    names = op.get("ExpressionAttributeNames") or {}
    values = op.get("ExpressionAttributeValues") or {}
    if op_type == "Put":
        backend.put_item(table, op["Item"])
    elif op_type == "Delete":
        backend.delete_item(table, key)
    elif op_type == "Update":
        backend.update_item(
            table,
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _restore(backend: DynamoDBBackend, saved: list[tuple[str, dict[str, Any], Any]]) -> None:
    for table_name, key, before in reversed(saved):
        if before is None:
            backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, before.to_json()["Attributes"])


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    parsed = _parse(self, transact_items)
    failures: list[Failure] = [_check(self, op, key) for _, op, key in parsed]
    if any(code is not None for code, _, _ in failures):
        raise TransactionCanceledException(failures)
    saved: list[tuple[str, dict[str, Any], Any]] = []
    try:
        for op_type, op, key in parsed:
            if op_type == "ConditionCheck":
                continue
            saved.append((op["TableName"], key, copy.deepcopy(self.get_item(op["TableName"], key))))
            _write(self, op_type, op, key)
    except MockValidationException:
        _restore(self, saved)
        raise


# ---------------------------------------------------------------------------------------------
# DynamoDB Streams: the records AWS writes, and nothing more
# ---------------------------------------------------------------------------------------------
# Stream gaps in moto fixed here (the local DynamoDB event sources read these streams):
# * a write that changes nothing (a PutItem of the same item, an UpdateItem setting the values
#   it already has) records a MODIFY; DynamoDB writes no stream record for it;
# * an UpdateItem that creates its item records two INSERTs (a keys-only one, then the real one);
# * the undo writes of a transaction that fails half-way are recorded as changes;
# * every GetRecords keeps a new shard iterator forever, so a poller grows the server's memory
#   without bound; AWS lets iterators expire, here only the newest ones are kept.
MAX_SHARD_ITERATORS = 1024


def _stream_shard_add(original: Any) -> Any:
    def add(self: StreamShard, old: Any, new: Any) -> None:
        if old is not None and new is not None and old.to_json() == new.to_json():
            return
        original(self, old, new)

    return add


def _collapse_upsert_inserts(shard: StreamShard, first_new: int) -> None:
    added = shard.items[first_new:]
    if len(added) == 2 and all(r.record["eventName"] == "INSERT" for r in added):
        del shard.items[first_new]  # the keys-only put that UpdateItem makes first
        added[1].record["dynamodb"]["SequenceNumber"] = str(
            shard.starting_sequence_number + first_new
        )


def _stream_lengths(backend: DynamoDBBackend, table_names: Any) -> dict[str, int]:
    lengths = {}
    for name in set(table_names):
        shard = backend.tables[name].stream_shard if name in backend.tables else None
        if shard is not None:
            lengths[name] = len(shard.items)
    return lengths


def _update_item(original: Any) -> Any:
    def update_item(self: DynamoDBBackend, table_name: str, *args: Any, **kwargs: Any) -> Any:
        before = _stream_lengths(self, [table_name])
        item = original(self, table_name, *args, **kwargs)
        shard = self.tables[table_name].stream_shard if table_name in before else None
        if shard is not None:
            _collapse_upsert_inserts(shard, before[table_name])
        return item

    return update_item


def _transact_write_items(original: Any) -> Any:
    def transact(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        names = [op["TableName"] for item in transact_items for op in item.values()]
        before = _stream_lengths(self, names)
        try:
            original(self, transact_items)
        except Exception:  # rolled back: the undo writes must not show as stream records
            for name, length in before.items():
                shard = self.tables[name].stream_shard
                if shard is not None:
                    del shard.items[length:]
            raise

    return transact


def _get_records(original: Any) -> Any:
    def get_records(self: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> Any:
        result = original(self, iterator_arn, limit)
        while len(self.shard_iterators) > MAX_SHARD_ITERATORS:
            del self.shard_iterators[next(iter(self.shard_iterators))]
        return result

    return get_records


def _wrap(owner: Any, name: str, wrapper: Any) -> None:
    current = getattr(owner, name)
    if not getattr(current, "_aftercare_streams", False):
        wrapped = wrapper(current)
        wrapped._aftercare_streams = True
        setattr(owner, name, wrapped)


def _patch_streams() -> None:
    _wrap(StreamShard, "add", _stream_shard_add)
    _wrap(DynamoDBBackend, "update_item", _update_item)
    _wrap(DynamoDBBackend, "transact_write_items", _transact_write_items)
    _wrap(DynamoDBStreamsBackend, "get_records", _get_records)


def apply() -> None:
    """Install the patches (idempotent)."""
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _patch_streams()
    _patch_queries()


# --------------------------------------------------------------------------------------------
# Query cost. moto's `Table.all_items()` sorts every item of the table (DynamoType comparisons
# in Python) and `Table.query` calls it for every request, also to find one partition: a Query
# cost O(N log N) in the table's size (seconds for a few thousand tickets, holding the
# one-at-a-time lock). `query` sorts its own candidates anyway, so during a query
# `all_items` returns them unsorted, and only the asked-for partition for a table query.
# --------------------------------------------------------------------------------------------


def _unsorted_items(table: Table, hash_key: Any, index_name: str | None) -> list[Any]:
    if index_name is None and hash_key is not None and table.range_key_attr is not None:
        partition = table.items.get(hash_key) if hash_key in table.items else None
        return list(partition.values()) if partition else []
    if table.range_key_attr:
        return [item for hash_set in table.items.values() for item in hash_set.values()]
    return list(table.items.values())


def _query(original: Any) -> Any:
    def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # index_name is the 8th parameter; moto's backend passes it positionally.
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        candidates = _unsorted_items(self, hash_key, index_name)
        self.all_items = lambda: candidates  # type: ignore[method-assign]
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    return query


def _patch_queries() -> None:
    _wrap(Table, "query", _query)
