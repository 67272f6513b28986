"""The device registry and customer directory as operator tooling reads and writes them.

DevicesTable (key `thing`; GSI `by_customer` on `customer_id`) and CustomersTable (key
`customer_id`). Access patterns:
    every device                       Scan DevicesTable (operator listing, the demo's fleet)
    one device                         GetItem thing
    the region of a customer's device  Query by_customer, Limit 1 (a new device inherits it)
    register a device                  PutItem, only if no item has its thing
    does a customer exist              GetItem customer_id, projecting the key only
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_item


class DeviceExists(RuntimeError):
    """A device with this thing name is registered already."""


class DeviceRegistry(Protocol):
    """Devices and their owners, for provisioning, listing and the smoke test."""

    def list_devices(self) -> list[dict[str, Any]]:
        """Every registered device, sorted by thing."""
        ...

    def get_device(self, thing: str) -> dict[str, Any] | None: ...

    def customer_region(self, customer_id: str) -> str | None:
        """The region of one of the customer's devices (None: the customer has none)."""
        ...

    def has_customer(self, customer_id: str) -> bool: ...

    def register_device(self, item: dict[str, Any]) -> None:
        """Write a new device; raises `DeviceExists` when its thing is taken."""
        ...


def register_device_request(table: str, item: dict[str, Any]) -> dict[str, Any]:
    """PutItem of a new device: refused when the thing is registered already."""
    return {
        "TableName": table,
        "Item": to_item(item),
        "ConditionExpression": "attribute_not_exists(thing)",
    }


def customer_devices_query(table: str, customer_id: str) -> dict[str, Any]:
    """One device of the customer, through the `by_customer` index."""
    return {
        "TableName": table,
        "IndexName": "by_customer",
        "KeyConditionExpression": "customer_id = :c",
        "ExpressionAttributeValues": {":c": {"S": customer_id}},
        "Limit": 1,
    }


class DynamoDeviceRegistry:
    """DeviceRegistry on DevicesTable and CustomersTable."""

    def __init__(self, *, devices_table: str, customers_table: str, ddb: Any | None = None) -> None:
        self.devices_table = devices_table
        self.customers_table = customers_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def list_devices(self) -> list[dict[str, Any]]:
        pages = self.ddb.get_paginator("scan").paginate(TableName=self.devices_table)
        devices = [from_item(i) for page in pages for i in page.get("Items", [])]
        return sorted(devices, key=lambda d: str(d["thing"]))

    def get_device(self, thing: str) -> dict[str, Any] | None:
        answer = self.ddb.get_item(TableName=self.devices_table, Key={"thing": {"S": thing}})
        return from_item(answer["Item"]) if "Item" in answer else None

    def customer_region(self, customer_id: str) -> str | None:
        answer = self.ddb.query(**customer_devices_query(self.devices_table, customer_id))
        items = [from_item(i) for i in answer.get("Items") or []]
        return str(items[0]["region"]) if items and "region" in items[0] else None

    def has_customer(self, customer_id: str) -> bool:
        answer = self.ddb.get_item(
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            ProjectionExpression="customer_id",
        )
        return "Item" in answer

    def register_device(self, item: dict[str, Any]) -> None:
        try:
            self.ddb.put_item(**register_device_request(self.devices_table, item))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise DeviceExists(f"device {item['thing']} is registered already") from exc
            raise
