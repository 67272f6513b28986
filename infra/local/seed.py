"""Demo data for the local stack: customers and a device fleet, deterministic so runs compare.

The item builders live in `infra.seeding` (shared with `aftercare admin seed`).
"""

from __future__ import annotations

from typing import Any

import boto3

from infra.seeding import (
    MODELS,
    claim_items,
    claimable_devices,
    customer_items,
    demo_customers,
    demo_devices,
    demo_inventory,
    field_items,
    write_all,
)


def seed_demo(resources: dict[str, str], endpoint_url: str, region: str) -> dict[str, Any]:
    """Write the demo customers and devices into the stack's tables; returns counts."""
    ddb = boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106  # moto's dummy credentials
    )
    customers = demo_customers()
    devices = demo_devices()
    write_all(ddb, resources["CustomersTable"], customer_items(customers))
    write_all(ddb, resources["DevicesTable"], [d.model_dump(mode="json") for d in devices])
    inventory = demo_inventory()
    if "InventoryTable" in resources:
        write_all(ddb, resources["InventoryTable"], inventory)
    claimable = claimable_devices()
    if "ClaimsTable" in resources:
        write_all(ddb, resources["ClaimsTable"], claim_items(claimable))
    field = field_items()
    if "FieldTable" in resources:
        write_all(ddb, resources["FieldTable"], field)
    return {
        "customers": len(customers),
        "vip_customers": sum(c.tier == "vip" for c in customers),
        "devices": len(devices),
        "claimable_devices": len(claimable),
        "stock_items": sum(1 for i in inventory if i["pk"].startswith("STOCK#")),
        "models": list(MODELS),
        "engineers": sum(1 for i in field if str(i["sk"]).startswith("ENG#")),
    }
