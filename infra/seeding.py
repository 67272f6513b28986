"""The stack's reference data, as items: parts master, warehouses, routing and opening stock
(from `shared/aftercare/data/parts.yaml`, checked against the fault catalog), the smoke-test
customer, deterministic demo customers and devices, and claimable (provisioned, not yet owned)
demo devices with their claim codes.

Used by the local stack's demo seed (`infra.local.seed`, fresh tables, batch writes) and by
`aftercare admin seed` (`infra.admin.seed`, any stack, conditional writes that never overwrite).
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from importlib import resources
from typing import Any

from aftercare.adapters.field_items import engineer_item, partner_item
from aftercare.adapters.inventory import shard_item, split_quantity
from aftercare.adapters.reference import DynamoReferenceWriter
from aftercare.data import safe_load
from aftercare.domain.ownership import code_hash
from aftercare.domain.ports import CustomerRecord, DeviceRecord
from aftercare.domain.ports.ownership import ClaimState
from aftercare.domain.rules import load_catalog
from aftercare.models.field import Engineer, EngineerKind, Partner

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


def region_of(customer_no: int) -> str:
    """Customers' regions, spread so every region has every product model."""
    return REGIONS[(customer_no // 2) % len(REGIONS)]


def demo_customers(count: int = DEMO_CUSTOMERS) -> list[CustomerRecord]:
    customers = []
    in_house = in_house_by_region()
    for n in range(1, count + 1):
        region = region_of(n)
        chinese = region == "ap-east"
        vip = n % 7 == 0
        local = in_house.get(region, [])
        customers.append(
            CustomerRecord(
                customer_id=f"c-{n:04d}",
                name=f"Demo Customer {n}",
                tier="vip" if vip else "standard",
                # A VIP prefers one of the region's in-house engineers (dispatch's
                # `vip_preferred` term), picked deterministically.
                preferred_engineers=[local[n % len(local)]] if vip and local else [],
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


QUIET_HOURS = {"start": "22:00", "end": "07:00"}
# Every 13th customer's phone number is not E.164: SNS refuses it, as it would in AWS, and
# the notifier falls back to the customer's next channel (a real data-quality failure).
UNREACHABLE_PHONE_EVERY = 13


def notification_preferences(customer: CustomerRecord) -> dict[str, Any]:
    """Quiet hours (local time) for everyone; an unusable phone number for a few."""
    extra: dict[str, Any] = {"quiet_hours": QUIET_HOURS}
    n = int(customer.customer_id.removeprefix("c-"))
    if n % UNREACHABLE_PHONE_EVERY == 0:
        extra["contact"] = {**customer.contact, "phone": f"0800 AFTERCARE {n}"}
    return extra


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
                region=region_of(customer),
                activated_at=activated,
                warranty_until=activated + timedelta(days=730),
                firmware=f"{2 + n % 3}.{n % 5}.0",
            )
        )
    return devices


CLAIMABLE_DEVICES = 40
# The first two claimable devices carry codes one can type from the README; the others' codes
# are derived from their serials (`claim_code`), still deterministic so a demo can print them.
DEMO_CLAIM_CODES = {1: "DEMO-CLAIM-0001", 2: "DEMO-CLAIM-0002"}
CLAIM_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def claimable_serial(n: int) -> str:
    model = MODELS[n % len(MODELS)]
    return f"{model.replace('-', '')}{20259000 + n}"


def claim_code(n: int) -> str:
    """Claimable demo device `n`'s code (local and demo stacks only: printed on the box)."""
    if n in DEMO_CLAIM_CODES:
        return DEMO_CLAIM_CODES[n]
    digest = hashlib.sha256(f"aftercare-demo-claim:{claimable_serial(n)}".encode()).digest()
    return "".join(CLAIM_CODE_ALPHABET[b % len(CLAIM_CODE_ALPHABET)] for b in digest[:10])


def claimable_devices(count: int = CLAIMABLE_DEVICES) -> list[ClaimState]:
    """Provisioned devices nobody owns yet (things `<model>-9NNN`), for ClaimsTable; they are
    not in the registry until claimed, so a fault they report is parked as an unknown device."""
    devices = []
    for n in range(1, count + 1):
        model = MODELS[n % len(MODELS)]
        serial = claimable_serial(n)
        devices.append(
            ClaimState(
                serial=serial,
                thing=f"{model.lower()}-9{n:03d}",
                model=model,
                region=REGIONS[n % len(REGIONS)],
                firmware="3.0.0",
                code_hash=code_hash(serial, claim_code(n)),
            )
        )
    return devices


def claim_items(devices: list[ClaimState]) -> list[dict[str, Any]]:
    return [d.model_dump(mode="json", exclude_none=True) for d in devices]


class SeedDataError(ValueError):
    """The packaged reference data contradicts itself (e.g. the catalog names an unknown part)."""


def parts_data() -> dict[str, Any]:
    text = resources.files("aftercare.data").joinpath("parts.yaml").read_text(encoding="utf-8")
    return dict(safe_load(text))


def check_catalog_parts(data: dict[str, Any]) -> None:
    """Every part the fault catalog reserves must be in the parts master."""
    wanted = {p.sku for entry in load_catalog().codes.values() for p in entry.parts}
    missing = sorted(wanted - set(data["parts"]))
    if missing:
        raise SeedDataError(f"the catalog reserves parts missing from parts.yaml: {missing}")


def demo_inventory() -> list[dict[str, Any]]:
    """Parts master, warehouses, region routing and opening stock from parts.yaml."""
    data = parts_data()
    check_catalog_parts(data)
    items: list[dict[str, Any]] = []
    for sku, part in data["parts"].items():
        items.append(
            {"pk": f"PART#{sku}", "sk": "META", "sku": sku, "currency": data["currency"], **part}
        )
    for warehouse, info in data["warehouses"].items():
        items.append({"pk": f"WAREHOUSE#{warehouse}", "sk": "META", "warehouse": warehouse, **info})
    for region, warehouses in data["routing"].items():
        items.append(
            {"pk": f"REGION#{region}", "sk": "ROUTING", "region": region, "warehouses": warehouses}
        )
    for warehouse, levels in data["stock"].items():
        for sku, part in data["parts"].items():
            level = levels.get(sku, levels["default"])
            shards = int(part.get("stock_shards", 1))
            items += stock_items(sku, warehouse, level["on_hand"], level["reorder_point"], shards)
    return items


def stock_items(
    sku: str, warehouse: str, on_hand: int, reorder_point: int, shards: int = 1
) -> list[dict[str, Any]]:
    """A (sku, warehouse)'s opening stock as its shard items, the quantity split evenly."""
    return [
        shard_item(sku, warehouse, n, units, reorder_point)
        for n, units in enumerate(split_quantity(on_hand, shards))
    ]


SMOKE_CUSTOMER_ID = "c-smoke"


def smoke_customer() -> CustomerRecord:
    """The owner of smoke-test devices: app push only, so a smoke run sends no e-mail or SMS."""
    return CustomerRecord(
        customer_id=SMOKE_CUSTOMER_ID,
        name="Aftercare smoke test",
        channels=["push"],
        contact={"push": "smoke-test"},
    )


def customer_items(customers: list[CustomerRecord]) -> list[dict[str, Any]]:
    """Demo customers as stored, with their notification preferences."""
    return [
        c.model_dump(mode="json") | notification_preferences(c) | email_key(c) for c in customers
    ]


def email_key(customer: CustomerRecord) -> dict[str, Any]:
    """The top-level `email` CustomersTable's `by_email` index reads (transfers to an e-mail)."""
    email = customer.contact.get("email")
    return {"email": email.strip().lower()} if email else {}


def field_directory() -> tuple[list[Partner], list[Engineer]]:
    """`data/engineers.yaml`: the partner companies and the engineers (in-house and theirs)."""
    text = resources.files("aftercare.data").joinpath("engineers.yaml").read_text(encoding="utf-8")
    data = safe_load(text)
    partners = [Partner.model_validate(p) for p in data["partners"]]
    engineers = [
        Engineer.model_validate(
            {
                **{k: v for k, v in e.items() if k != "hours"},
                "kind": EngineerKind.PARTNER if e.get("partner") else EngineerKind.IN_HOUSE,
                "working_hours": e["hours"],
                "cost_per_visit": _partner_cost(partners, e.get("partner")),
            }
        )
        for e in data["engineers"]
    ]
    return partners, engineers


def in_house_by_region() -> dict[str, list[str]]:
    """The seeded in-house engineers' ids per region they cover, sorted."""
    found: dict[str, list[str]] = {}
    for engineer in field_directory()[1]:
        if engineer.kind is EngineerKind.IN_HOUSE:
            for region in engineer.regions:
                found.setdefault(region, []).append(engineer.engineer_id)
    return {region: sorted(ids) for region, ids in found.items()}


def _partner_cost(partners: list[Partner], partner_id: str | None) -> float:
    return next((p.cost_per_visit for p in partners if p.partner_id == partner_id), 0.0)


def field_items() -> list[dict[str, Any]]:
    """The directory as FieldTable items."""
    partners, engineers = field_directory()
    return [partner_item(p) for p in partners] + [engineer_item(e) for e in engineers]


def write_all(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    """Every item into a fresh table (the local stack's seed), through the adapter."""
    DynamoReferenceWriter(table=table, ddb=ddb).put_all(items)
