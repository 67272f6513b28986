"""`aftercare admin seed`: reference data into a stack's tables, without ever overwriting.

Every item is written with a condition that it does not exist yet, so a re-run changes nothing:
stock levels an operator has adjusted, held or consumed since stay as they are (receive stock
with `aftercare parts adjust`), and customers keep their edits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aftercare.adapters.inventory import DynamoInventoryWriter
from aftercare.adapters.reference import DynamoReferenceWriter, ReferenceWriter

from infra.seeding import (
    claim_items,
    claimable_devices,
    customer_items,
    demo_customers,
    demo_inventory,
    field_items,
    smoke_customer,
)
from infra.target import Target


def item_kind(item: dict[str, Any]) -> str:
    """`part`, `warehouse`, `routing`, `stock`, `customer`, `claimable_device`, `engineer` or
    `partner`: what a seeded item is."""
    if "customer_id" in item and "pk" not in item:
        return "customer"
    if "code_hash" in item:
        return "claimable_device"
    if item.get("pk") == "DIRECTORY":
        return "engineer" if str(item["sk"]).startswith("ENG#") else "partner"
    prefix = str(item["pk"]).split("#", 1)[0]
    return {"PART": "part", "WAREHOUSE": "warehouse", "REGION": "routing"}.get(
        prefix, prefix.lower()
    )


def _seed_table(
    writer: ReferenceWriter, items: Iterable[dict[str, Any]], summary: dict[str, Counter[str]]
) -> None:
    for item in items:
        outcome = "created" if writer.put_if_absent(item) else "unchanged"
        summary[outcome][item_kind(item)] += 1


def keep_existing_stock_layout(
    writer: ReferenceWriter, summary: dict[str, Counter[str]], shards_of: Callable[[str], int]
) -> Iterator[dict[str, Any]]:
    """The demo inventory, parts first. A part that already existed keeps its stock layout:
    shard items beyond its stored `stock_shards` (`shards_of`) are not seeded, or they would
    add units the reservations cannot see (a stack seeded before parts had shards).
    `aftercare parts shards SKU --count N` shards an existing part (new shards empty, then
    levelled)."""
    existing: dict[str, int] = {}
    for item in demo_inventory():
        if item_kind(item) == "part":
            created = writer.put_if_absent(item)
            summary["created" if created else "unchanged"]["part"] += 1
            if not created:
                existing[item["sku"]] = shards_of(item["sku"])
            continue
        sku = str(item.get("sku"))
        beyond = sku in existing and int(item.get("shard", 0)) >= existing[sku]
        if item_kind(item) == "stock" and beyond:
            continue
        yield item


def seed_stack(target: Target, *, with_demo_customers: bool = False) -> dict[str, Any]:
    """Parts, warehouses, routing, stock, the smoke-test customer (plus the demo customers) and
    the field engineers and partners;
    returns what was created and what already existed, by kind."""
    ddb = target.client("dynamodb")
    summary: dict[str, Counter[str]] = {"created": Counter(), "unchanged": Counter()}
    inventory = DynamoReferenceWriter(table=target.resource("InventoryTable"), key="pk", ddb=ddb)
    shards_of = DynamoInventoryWriter(table=target.resource("InventoryTable"), ddb=ddb).shard_count
    _seed_table(inventory, keep_existing_stock_layout(inventory, summary, shards_of), summary)
    customers = [smoke_customer().model_dump(mode="json")]
    if with_demo_customers:
        customers += customer_items(demo_customers())
    directory = DynamoReferenceWriter(
        table=target.resource("CustomersTable"), key="customer_id", ddb=ddb
    )
    _seed_table(directory, customers, summary)
    if with_demo_customers:  # demo stacks only: their claim codes are public
        claims = DynamoReferenceWriter(table=target.resource("ClaimsTable"), key="serial", ddb=ddb)
        _seed_table(claims, claim_items(claimable_devices()), summary)
    field = DynamoReferenceWriter(table=target.resource("FieldTable"), key="pk", ddb=ddb)
    _seed_table(field, field_items(), summary)
    return {
        "stack": target.name,
        "created": dict(sorted(summary["created"].items())),
        "unchanged": dict(sorted(summary["unchanged"].items())),
    }
