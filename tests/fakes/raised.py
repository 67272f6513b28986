"""One in-memory world for raised-ticket tests: a customer's device, a VIP's device, a fan in
stock, and the raising and classifying dependencies wired to the same fakes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from aftercare.domain.channels import load_channel_policy
from aftercare.domain.classification import ClassifyDeps
from aftercare.domain.intake import IntakeRules
from aftercare.domain.parts import PartInfo, StockLevel
from aftercare.domain.ports import CustomerRecord
from aftercare.domain.raising import RaiseDeps
from aftercare.domain.rules import load_catalog, load_policy

from tests.fakes.diagnostics import FakeDiagnosticsStore, FakePublisher
from tests.fakes.faults import THING, store_with_device
from tests.fakes.stores import FakeTaskStore, FakeTicketStore

VIP_THING = "ac-vip"
FAN = PartInfo(
    sku="FAN-80MM",
    name_en="Fan",
    name_zh="风扇",
    unit_price=12.0,
    currency="EUR",
    lead_time_days=5,
    models=["AC-HP"],
)


class Devices:
    """The registry as the support use cases read it, from the fake ticket store's devices."""

    def __init__(self, store: FakeTicketStore) -> None:
        self.store = store

    def get(self, thing: str) -> dict[str, Any] | None:
        device = self.store.devices.get(thing)
        return device.model_dump(mode="json") if device else None

    def things_of(self, customer_id: str) -> list[str]:
        return [t for t, d in self.store.devices.items() if d.customer_id == customer_id]


@dataclass
class RaisedWorld:
    store: FakeTicketStore
    rules: IntakeRules
    raising: RaiseDeps
    classifying: ClassifyDeps
    publisher: FakePublisher


def raised_world() -> RaisedWorld:
    """`ac-0001` of the standard customer c-std, `ac-vip` of the VIP c-vip (both AC-HP, in
    warranty), FAN-80MM in stock at WH-A, eu-west's warehouse."""
    store = store_with_device()
    store.customers["c-std"] = CustomerRecord(customer_id="c-std", name="Std", tier="standard")
    store.customers["c-vip"] = CustomerRecord(customer_id="c-vip", name="Vip", tier="vip")
    store.devices[VIP_THING] = store.devices[THING].model_copy(
        update={"thing": VIP_THING, "customer_id": "c-vip", "warranty_until": date(2030, 1, 1)}
    )
    store.routing["eu-west"] = ["WH-A"]
    store.parts["FAN-80MM"] = FAN
    store.stock[("FAN-80MM", "WH-A")] = StockLevel(
        sku="FAN-80MM", warehouse="WH-A", on_hand=5, held=0, reorder_point=1
    )
    rules = IntakeRules(
        catalog=load_catalog(), policy=load_policy(), repeat_window=timedelta(days=30)
    )
    diagnostics = FakeDiagnosticsStore()
    diagnostics.tickets = store.tickets  # one tickets table
    publisher = FakePublisher()
    return RaisedWorld(
        store=store,
        rules=rules,
        raising=RaiseDeps(
            tickets=store,
            devices=Devices(store),
            tasks=FakeTaskStore(store),
            rules=rules,
            channels=load_channel_policy(),
        ),
        classifying=ClassifyDeps(
            tickets=store,
            diagnostics=diagnostics,
            publisher=publisher,
            rules=rules,
            timeout=timedelta(minutes=5),
        ),
        publisher=publisher,
    )
