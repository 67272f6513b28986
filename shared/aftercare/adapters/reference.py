"""Reference data (parts, warehouses, routing, opening stock, customers) written once.

Access pattern: PutItem only if no item has the key, so seeding twice changes nothing and
what operators changed since (stock received, customers edited) stays.
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, to_item


class ReferenceWriter(Protocol):
    """Writes reference items into one table without overwriting."""

    def put_if_absent(self, item: dict[str, Any]) -> bool:
        """Write `item` unless an item with its key exists; True when it was written."""
        ...


def put_if_absent_request(table: str, item: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "TableName": table,
        "Item": to_item(item),
        "ConditionExpression": "attribute_not_exists(#key)",
        "ExpressionAttributeNames": {"#key": key},
    }


class DynamoReferenceWriter:
    """ReferenceWriter on one DynamoDB table whose partition key is `key`."""

    def __init__(self, *, table: str, key: str, ddb: Any | None = None) -> None:
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
