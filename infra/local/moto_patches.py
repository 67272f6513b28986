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


def apply() -> None:
    """Install the patches (idempotent)."""
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
