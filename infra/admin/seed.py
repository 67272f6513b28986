"""`aftercare admin seed`: reference data into a stack's tables, without ever overwriting.

Every item is written with a condition that it does not exist yet, so a re-run changes nothing:
stock levels an operator has adjusted, held or consumed since stay as they are (receive stock
with `aftercare parts adjust`), and customers keep their edits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from aftercare.adapters.aws import to_item
from botocore.exceptions import ClientError

from infra.seeding import customer_items, demo_customers, demo_inventory, smoke_customer
from infra.target import Target


def item_kind(item: dict[str, Any]) -> str:
    """`part`, `warehouse`, `routing`, `stock` or `customer`: what a seeded item is."""
    if "customer_id" in item and "pk" not in item:
        return "customer"
    prefix = str(item["pk"]).split("#", 1)[0]
    return {"PART": "part", "WAREHOUSE": "warehouse", "REGION": "routing"}.get(
        prefix, prefix.lower()
    )


def put_if_absent(ddb: Any, table: str, item: dict[str, Any], key: str) -> bool:
    """Write `item` unless an item with its key exists; True when it was written."""
    try:
        ddb.put_item(
            TableName=table,
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(#key)",
            ExpressionAttributeNames={"#key": key},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _seed_table(
    ddb: Any,
    table: str,
    items: Iterable[dict[str, Any]],
    key: str,
    summary: dict[str, Counter[str]],
) -> None:
    for item in items:
        outcome = "created" if put_if_absent(ddb, table, item, key) else "unchanged"
        summary[outcome][item_kind(item)] += 1


def seed_stack(target: Target, *, with_demo_customers: bool = False) -> dict[str, Any]:
    """Parts, warehouses, routing, stock and the smoke-test customer (plus the demo customers);
    returns what was created and what already existed, by kind."""
    ddb = target.client("dynamodb")
    summary: dict[str, Counter[str]] = {"created": Counter(), "unchanged": Counter()}
    _seed_table(ddb, target.resource("InventoryTable"), demo_inventory(), "pk", summary)
    customers = [smoke_customer().model_dump(mode="json")]
    if with_demo_customers:
        customers += customer_items(demo_customers())
    _seed_table(ddb, target.resource("CustomersTable"), customers, "customer_id", summary)
    return {
        "stack": target.name,
        "created": dict(sorted(summary["created"].items())),
        "unchanged": dict(sorted(summary["unchanged"].items())),
    }
