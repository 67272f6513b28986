"""Reference data (parts, warehouses, routing, opening stock, customers) written once.

Access patterns: PutItem only if no item has the key, so seeding twice changes nothing and
what operators changed since (stock received, customers edited) stays; BatchWriteItem of a
whole fresh table (the local stack's seed), 25 items a request, unprocessed items retried.
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, to_item

BATCH_SIZE = 25  # BatchWriteItem's limit


class ReferenceWriter(Protocol):
    """Writes reference items into one table."""

    def put_if_absent(self, item: dict[str, Any]) -> bool:
        """Write `item` unless an item with its key exists; True when it was written."""
        ...

    def put_all(self, items: list[dict[str, Any]]) -> None:
        """Write every item, replacing any with the same key (a fresh table's seed)."""
        ...


def put_if_absent_request(table: str, item: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "TableName": table,
        "Item": to_item(item),
        "ConditionExpression": "attribute_not_exists(#key)",
        "ExpressionAttributeNames": {"#key": key},
    }


def batch_requests(table: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BatchWriteItem `RequestItems`, at most BATCH_SIZE puts each."""
    return [
        {table: [{"PutRequest": {"Item": to_item(i)}} for i in items[start : start + BATCH_SIZE]]}
        for start in range(0, len(items), BATCH_SIZE)
    ]


class DynamoReferenceWriter:
    """ReferenceWriter on one DynamoDB table whose partition key is `key`."""

    def __init__(self, *, table: str, key: str = "pk", ddb: Any | None = None) -> None:
        self.table = table
        self.key = key
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def put_if_absent(self, item: dict[str, Any]) -> bool:
        try:
            self.ddb.put_item(**put_if_absent_request(self.table, item, self.key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_all(self, items: list[dict[str, Any]]) -> None:
        for request in batch_requests(self.table, items):
            pending: dict[str, Any] = request
            while pending:
                pending = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems")
                pending = pending or {}
