"""Stock invariants under random sequences of parts operations, on the real DynamoDB adapter.

For every stock shard item, and so for every (SKU, warehouse): on_hand = available + held and
available >= 0; a shard's held equals the held reservations on that shard; the units on hand
are the seeded ones plus the adjustments minus the consumed holds (moves between shards create
and lose nothing); every reservation belongs to exactly one ticket whose parts line agrees with
it; no ticket holds more of a SKU than its catalog entry asks for.

Concurrent reservation through the sharded write path is modelled as an explicit interleaving
(`storm`): several faults needing the same SKU all plan from the one stock read taken before
any of them wrote (what concurrent Lambdas see), then commit one after another; a commit whose
shard no longer has the unit must fail its condition and plan again from a fresh read. Real
threads race the same path in `test_parts_concurrency`.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from aftercare.adapters.inventory import DynamoInventoryWriter, InventoryReader
from aftercare.domain.intake import IntakeRules, intake_fault
from aftercare.domain.lifecycle import change_status
from aftercare.domain.parts import InvalidLineChange, OutOfStock, StockLevel
from aftercare.domain.ports import ConcurrentUpdate
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.domain.stock import PartsError, adjust_stock, expire_hold, release_part, reserve_part
from aftercare.domain.tickets import InvalidTransition
from aftercare.models.payloads import FaultEnvelope
from aftercare.models.tickets import Resolution, TicketStatus
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from moto import mock_aws

from infra.local.provision import provision
from infra.local.provision_context import AwsClients
from infra.local.seed import seed_demo
from infra.local.template import load_template
from infra.seeding import demo_devices
from tests.fakes.tables import ticket_store

ROOT = Path(__file__).resolve().parents[2]
# ap-east devices reserve from WH-SHA only: every shortage is a real backorder.
THINGS = [d.thing for d in demo_devices() if d.region == "ap-east" and d.model == "RT-X"][:6]
CODES = ["PSU-OVERVOLT", "FAN-STALL", "BATT-RTC-LOW", "FLASH-WEAR"]
SKUS = ["PSU-240-A", "FAN-80MM", "BATT-CR2032", "EMMC-8GB"]
HOLD = timedelta(hours=1)
pytestmark = pytest.mark.usefixtures("fake_aws_credentials")


@pytest.fixture(autouse=True, scope="module")
def _world_is_torn_down() -> Iterator[None]:
    """The shared moto account must not outlive this module (moto's backends are global)."""
    yield
    if World.instance is not None:
        World.instance.mock.stop()
        World.instance = None


class World:
    """One moto account for the whole run: provisioning per example would dominate the time.
    State accumulates across examples, which the invariants must tolerate anyway."""

    instance: World | None = None

    def __init__(self) -> None:
        self.mock = mock_aws()
        self.mock.start()
        session = boto3.session.Session(region_name="us-east-1")
        self.ddb = session.client("dynamodb")
        clients = AwsClients(
            dynamodb=self.ddb,
            sqs=session.client("sqs"),
            sns=session.client("sns"),
            iot=session.client("iot"),
            events=session.client("events"),
            s3=session.client("s3"),
        )
        result = provision(load_template(ROOT / "template.yaml"), clients, endpoint_url="x")
        self.tables = result.resources
        seed_demo(self.tables, endpoint_url=None, region="us-east-1")  # type: ignore[arg-type]
        self.faults = 0
        reader = InventoryReader(table=self.tables["InventoryTable"], ddb=self.ddb)
        # the seeded units per (sku, warehouse), and every adjustment applied since
        self.on_hand: Counter[tuple[str, str]] = Counter(
            {(i["sku"], i["warehouse"]): int(i["on_hand"]) for i in reader.stock()}
        )

    @classmethod
    def get(cls) -> World:
        if cls.instance is None:
            cls.instance = World()
        return cls.instance


class StaleReads:
    """The ticket store, except that its next `stale` stock reads return the snapshot taken
    when the storm began: every fault of the storm plans from the same, soon outdated, read."""

    def __init__(self, store: object, stale: int) -> None:
        self.inner = store
        self.stale = stale
        self.snapshots: dict[tuple[tuple[str, str], ...], dict[tuple[str, str], StockLevel]] = {}

    def load_stock(
        self, keys: list[tuple[str, str]], shards: Mapping[str, int] | None = None
    ) -> dict[tuple[str, str], StockLevel]:
        if self.stale <= 0:
            return self.inner.load_stock(keys, shards)  # type: ignore[attr-defined,no-any-return]
        self.stale -= 1
        key = tuple(keys)
        if key not in self.snapshots:
            self.snapshots[key] = self.inner.load_stock(keys, shards)  # type: ignore[attr-defined]
        return self.snapshots[key]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class PartsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World.get()
        self.ddb = self.world.ddb
        self.tables = self.world.tables
        self.store = ticket_store(self.tables, self.ddb)
        self.reader = InventoryReader(table=self.tables["InventoryTable"], ddb=self.ddb)
        self.writer = DynamoInventoryWriter(table=self.tables["InventoryTable"], ddb=self.ddb)
        self.rules = IntakeRules(
            catalog=load_catalog(),
            policy=load_policy(),
            repeat_window=timedelta(days=30),
            hold_duration=HOLD,
        )
        self.now = datetime.now(UTC)
        self.tickets: list[str] = []

    @initialize(levels=st.lists(st.integers(0, 5), min_size=len(SKUS), max_size=len(SKUS)))
    def scarce_stock(self, levels: list[int]) -> None:
        # Make stock scarce through the domain itself (state is shared across examples).
        current = {i["sku"]: i for i in self.reader.stock() if i["warehouse"] == "WH-SHA"}
        for sku, level in zip(SKUS, levels, strict=True):
            change = level - int(current[sku]["available"])
            if change:
                adjust_stock(
                    self.writer, sku, "WH-SHA", change, reason="scarce", actor="p", now=self.now
                )
                self.world.on_hand[(sku, "WH-SHA")] += change

    @rule(thing=st.sampled_from(THINGS), code=st.sampled_from(CODES))
    def fault(self, thing: str, code: str) -> None:
        self._fault(self.store, thing, code)

    @rule(
        things=st.lists(st.sampled_from(THINGS), min_size=2, max_size=3, unique=True),
        code=st.sampled_from(CODES),
    )
    def storm(self, things: list[str], code: str) -> None:
        # Several devices report the same code at once: each plans from the same stock read
        racing = StaleReads(self.store, stale=len(things))
        for thing in things:
            self._fault(racing, thing, code)

    def _fault(self, store: object, thing: str, code: str) -> None:
        self.world.faults += 1
        report = {
            "fault_id": f"prop-{self.world.faults:06d}",
            "code": code,
            "occurred_at": self.now.isoformat(),
            "firmware": "1.0",
        }
        envelope = FaultEnvelope(
            payload_b64=base64.b64encode(json.dumps(report).encode()).decode(),
            thing=thing,
            received_at=int(self.now.timestamp() * 1000),
            topic=f"dt/aftercare/{thing}/fault",
        )
        outcome = intake_fault(envelope, store, self.rules)  # type: ignore[arg-type]
        if outcome.ticket_id and outcome.ticket_id not in self.tickets:
            self.tickets.append(outcome.ticket_id)

    def _ticket(self, data: st.DataObject) -> str | None:
        """A ticket, half the time one holding a part (so releases, expiries and closes meet
        holds on every shard, not mostly tickets with nothing held). The draws do not depend
        on the shared database's state (hypothesis replays them): an index, taken modulo."""
        prefer_held = data.draw(st.booleans())
        pick = data.draw(st.integers(0, 10_000))
        if not self.tickets:
            return None
        held = {r["ticket_id"] for r in self.reader.reservations() if r["status"] == "held"}
        holding = [t for t in self.tickets if prefer_held and t in held]
        choices = holding or self.tickets
        return choices[pick % len(choices)]

    @rule(data=st.data(), how=st.sampled_from(["on_site", "remote", "cancel"]))
    def close(self, data: st.DataObject, how: str) -> None:
        ticket_id = self._ticket(data)
        if ticket_id is None:
            return
        ticket = self.store.get_ticket(ticket_id).ticket
        try:
            if how == "on_site" and ticket.status is TicketStatus.OPEN:
                for step in (TicketStatus.SCHEDULED, TicketStatus.IN_REPAIR):
                    change_status(self.store, ticket_id, step, actor="p", reason="r", now=self.now)
            target = TicketStatus.CANCELLED if how == "cancel" else TicketStatus.RESOLVED
            resolution = Resolution.REMOTE if how == "remote" else None
            change_status(
                self.store,
                ticket_id,
                target,
                actor="p",
                reason="r",
                now=self.now,
                resolution=resolution,
            )
        except (InvalidTransition, ConcurrentUpdate):
            pass

    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        ticket_id = self._ticket(data)
        if ticket_id is None:
            return
        for line in self.store.get_ticket(ticket_id).ticket.parts:
            expire_hold(self.store, ticket_id, line.reservation_id, self.now + 2 * HOLD)

    @rule(data=st.data(), sku=st.sampled_from(SKUS), manual=st.sampled_from(["hold", "release"]))
    def by_hand(self, data: st.DataObject, sku: str, manual: str) -> None:
        ticket_id = self._ticket(data)
        if ticket_id is None:
            return
        operation = reserve_part if manual == "hold" else release_part
        kwargs = {"hold": HOLD} if manual == "hold" else {}
        with contextlib.suppress(PartsError, OutOfStock, InvalidLineChange, ConcurrentUpdate):
            operation(self.store, ticket_id, sku, actor="p", reason="r", now=self.now, **kwargs)

    @rule(sku=st.sampled_from(SKUS), change=st.integers(-3, 3).filter(bool))
    def adjust(self, sku: str, change: int) -> None:
        with contextlib.suppress(OutOfStock):
            adjust_stock(
                self.writer, sku, "WH-SHA", change, reason="count", actor="p", now=self.now
            )
            self.world.on_hand[(sku, "WH-SHA")] += change

    @rule(sku=st.sampled_from(SKUS))
    def rebalance(self, sku: str) -> None:
        self.writer.rebalance(sku, "WH-SHA")

    @rule(sku=st.sampled_from(SKUS))
    def more_shards(self, sku: str) -> None:
        current = self.writer.shard_count(sku)
        if current < 4:
            self.writer.set_shard_count(sku, current + 1)

    @invariant()
    def books_balance(self) -> None:
        reservations = self.reader.reservations()
        held_by_shard: Counter[tuple[str, str, int]] = Counter()
        consumed: Counter[tuple[str, str]] = Counter()
        for res in reservations:
            ticket = self.store.get_ticket(res["ticket_id"]).ticket  # never an orphan
            line = ticket.parts[int(res["line_index"])]
            assert line.reservation_id == res["reservation_id"]
            assert line.status == res["status"]
            assert line.shard == int(res.get("shard", 0))
            if res["status"] == "held":
                shard = (res["sku"], res["warehouse"], int(res.get("shard", 0)))
                held_by_shard[shard] += int(res["qty"])
            if res["status"] == "consumed":
                consumed[(res["sku"], res["warehouse"])] += int(res["qty"])
        for item in self.reader.stock_shards():  # never oversold, on any shard
            key = (item["sku"], item["warehouse"], int(item.get("shard", 0)))
            on_hand, held, available = (int(item[k]) for k in ("on_hand", "held", "available"))
            assert on_hand == available + held and available >= 0, item
            assert held == held_by_shard[key], (item, held_by_shard[key])
        for item in self.reader.stock():  # nothing created or lost moving between shards
            key = (item["sku"], item["warehouse"])
            assert item["on_hand"] == self.world.on_hand[key] - consumed[key], item
        for ticket_id in self.tickets:
            ticket = self.store.get_ticket(ticket_id).ticket
            asked = {p.sku: p.qty for p in ticket.suggested_parts}
            held = Counter(p.sku for p in ticket.parts if p.status == "held")
            assert all(held[s] <= 1 and s in asked for s in held)


PartsMachine.TestCase.settings = settings(
    # kept under the suite's 300 s per-test timeout on a loaded machine: moto copies a table
    # for each transaction, and the shared world grows with every example
    max_examples=4,
    stateful_step_count=10,
    deadline=None,
    # The database is shared across examples, so shrinking could not replay a failure
    # faithfully: report the failing sequence as generated instead.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPartsInvariants = PartsMachine.TestCase
