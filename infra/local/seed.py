"""Demo data for the local stack: customers and a device fleet, deterministic so runs compare."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import boto3
from aftercare.adapters.aws import to_item
from aftercare.domain.ports import CustomerRecord, DeviceRecord

MODELS = ("AC-HP", "RT-X", "EV-CH", "IC-300")
REGIONS = ("eu-west", "eu-central", "ap-east", "us-east")
TIME_ZONES = {
    "eu-west": "Europe/Dublin",
    "eu-central": "Europe/Berlin",
    "ap-east": "Asia/Shanghai",
    "us-east": "America/New_York",
}
CHANNEL_ORDERS = (["email", "sms"], ["sms", "email"], ["push", "email"], ["email"])
DEMO_CUSTOMERS = 80
DEMO_DEVICES = 240


def demo_customers(count: int = DEMO_CUSTOMERS) -> list[CustomerRecord]:
    customers = []
    for n in range(1, count + 1):
        region = REGIONS[n % len(REGIONS)]
        chinese = region == "ap-east"
        customers.append(
            CustomerRecord(
                customer_id=f"c-{n:04d}",
                name=f"Demo Customer {n}",
                tier="vip" if n % 7 == 0 else "standard",
                language="zh-CN" if chinese else "en",
                time_zone=TIME_ZONES[region],
                channels=CHANNEL_ORDERS[n % len(CHANNEL_ORDERS)],
                contact={
                    "email": f"customer{n}@example.com",
                    "phone": f"+1555{n:07d}",
                    "push": f"device-token-{n:04d}",
                },
            )
        )
    return customers


def demo_devices(count: int = DEMO_DEVICES, customers: int = DEMO_CUSTOMERS) -> list[DeviceRecord]:
    devices = []
    for n in range(1, count + 1):
        model = MODELS[n % len(MODELS)]
        customer = (n - 1) % customers + 1
        activated = date(2024, 1, 1) + timedelta(days=(n * 37) % 1000)
        devices.append(
            DeviceRecord(
                thing=f"{model.lower()}-{n:04d}",
                serial=f"{model.replace('-', '')}{20240000 + n}",
                model=model,
                customer_id=f"c-{customer:04d}",
                region=REGIONS[customer % len(REGIONS)],
                activated_at=activated,
                warranty_until=activated + timedelta(days=730),
                firmware=f"{2 + n % 3}.{n % 5}.0",
            )
        )
    return devices


def _write_all(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": to_item(i)}} for i in items[start : start + 25]]
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


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
    _write_all(ddb, resources["CustomersTable"], [c.model_dump(mode="json") for c in customers])
    _write_all(ddb, resources["DevicesTable"], [d.model_dump(mode="json") for d in devices])
    return {
        "customers": len(customers),
        "vip_customers": sum(c.tier == "vip" for c in customers),
        "devices": len(devices),
        "models": list(MODELS),
    }
