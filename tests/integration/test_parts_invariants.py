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

Shard-exact release: each shard's `held` must equal the sum of the live holds (reservation
records, written with the ticket's line) that name *that* shard (`shard_books`). A release,
expiry or consumption whose stock change lands on another shard leaves one shard holding a unit
no hold names and another short of one: caught even though every warehouse total still adds up.
For that to be exercised, stock is spread over the shards (`scarce_stock` puts units on every
shard of the 4-shard PSU and may open the walk with a few PSU holds), so holds land on their
home shards, and `release_a_hold` releases a live hold, preferring one off shard 0 (a release
that wrongly lands on shard 0 shows there). With a release planted to go to shard 0, the random
walk failed in 3 steps: `scarce_stock(levels=[5, 7, 3, 3])`, `storm(PSU-OVERVOLT, 3 devices)`,
`release_a_hold` -> "PSU-240-A@WH-SHA shard 0: held 0, but the live holds naming this shard
sum to 1" / "shard 2: held 1, ... sum to 0".
`test_a_release_to_the_wrong_shard_is_caught` runs the machine against a mutant store that
does exactly that, and expects it to fail.

Every example starts from a freshly provisioned and seeded moto account, so a failing sequence
replays exactly (hypothesis replays it to report it; on a shared, already corrupted account
the replay failed elsewhere and was reported as flaky data generation instead).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.inventory import DynamoInventoryWriter, InventoryReader
from aftercare.domain.intake import IntakeRules, intake_fault
from aftercare.domain.lifecycle import change_status
from aftercare.domain.parts import InvalidLineChange, LineChange, OutOfStock, StockLevel
from aftercare.domain.ports import ConcurrentUpdate, PartsChange
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.domain.stock import PartsError, adjust_stock, expire_hold, release_part, reserve_part
from aftercare.domain.tickets import InvalidTransition, StatusChange
from aftercare.models.payloads import FaultEnvelope
from aftercare.models.tickets import Resolution, TicketStatus
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
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
    """One provisioned, seeded moto account per example (~3 s): a failure replays exactly."""

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
    def fresh(cls) -> World:
        """A new account (moto resets its backends when the mock starts again)."""
        if cls.instance is not None:
            cls.instance.mock.stop()
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
    # how the machine builds its ticket store (a mutant subclass swaps in a broken one)
    store_factory: Callable[[Mapping[str, str], object], DynamoTicketStore] = staticmethod(
        ticket_store
    )

    def __init__(self) -> None:
        super().__init__()
        self.world = World.fresh()
        self.ddb = self.world.ddb
        self.tables = self.world.tables
        self.store = self.store_factory(self.tables, self.ddb)
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

    @initialize(
        levels=st.lists(st.integers(0, 8), min_size=len(SKUS), max_size=len(SKUS)),
        opening=st.integers(0, 4),
    )
    def scarce_stock(self, levels: list[int], opening: int = 0) -> None:
        # Make stock scarce through the domain itself; a count is spread over the shards
        # (emptiest first), so from 4 units on every shard of the 4-shard PSU has one.
        current = {i["sku"]: i for i in self.reader.stock() if i["warehouse"] == "WH-SHA"}
        for sku, level in zip(SKUS, levels, strict=True):
            change = level - int(current[sku]["available"])
            if change:
                adjust_stock(
                    self.writer, sku, "WH-SHA", change, reason="scarce", actor="p", now=self.now
                )
                self.world.on_hand[(sku, "WH-SHA")] += change
        # A storm already under way: `opening` devices hold a PSU each, on their home shards
        # (or the next with stock), so the walk meets holds off shard 0 from its first step.
        for thing in THINGS[:opening]:
            self._fault(self.store, thing, "PSU-OVERVOLT")

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

    @rule(data=st.data())
    def release_a_hold(self, data: st.DataObject) -> None:
        """Give back one live hold, preferring one off shard 0: its units must return to the
        shard it names (the draw is an index, taken modulo: hypothesis replays it)."""
        pick = data.draw(st.integers(0, 10_000))
        held = [r for r in self.reader.reservations() if r["status"] == "held"]
        off_zero = [r for r in held if int(r.get("shard", 0)) > 0]
        choices = sorted(off_zero or held, key=lambda r: str(r["reservation_id"]))
        if not choices:
            return
        res = choices[pick % len(choices)]
        with contextlib.suppress(PartsError, InvalidLineChange, ConcurrentUpdate):
            release_part(
                self.store, res["ticket_id"], res["sku"], actor="p", reason="r", now=self.now
            )

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
        wrong = shard_books(self.reader.stock_shards(), held_by_shard)
        assert not wrong, "stock shards out of balance:\n" + "\n".join(wrong)
        for item in self.reader.stock():  # nothing created or lost moving between shards
            key = (item["sku"], item["warehouse"])
            assert item["on_hand"] == self.world.on_hand[key] - consumed[key], item
        for ticket_id in self.tickets:
            ticket = self.store.get_ticket(ticket_id).ticket
            asked = {p.sku: p.qty for p in ticket.suggested_parts}
            held = Counter(p.sku for p in ticket.parts if p.status == "held")
            assert all(held[s] <= 1 and s in asked for s in held)


def shard_books(
    shards: list[dict[str, Any]], held_by_shard: Mapping[tuple[str, str, int], int]
) -> list[str]:
    """What is wrong with the stock shard items: a shard oversold or not adding up, or one
    whose `held` differs from the live holds naming it (a unit returned to the wrong shard)."""
    wrong = []
    for item in shards:
        shard = int(item.get("shard", 0))
        key = (str(item["sku"]), str(item["warehouse"]), shard)
        on_hand, held, available = (int(item[k]) for k in ("on_hand", "held", "available"))
        where = f"{key[0]}@{key[1]} shard {shard}"
        if on_hand != available + held or available < 0:
            wrong.append(f"{where}: on_hand {on_hand} != available {available} + held {held}")
        if held != held_by_shard.get(key, 0):
            wrong.append(
                f"{where}: held {held}, but the live holds naming this shard sum to "
                f"{held_by_shard.get(key, 0)}"
            )
    return wrong


def _to_shard_zero(changes: list[LineChange]) -> list[LineChange]:
    return [
        c.model_copy(update={"delta": c.delta.model_copy(update={"shard": 0})}) if c.delta else c
        for c in changes
    ]


class ReleasesToShardZero(DynamoTicketStore):
    """A mutant: every held line's stock change (release, expiry, consumption) lands on shard 0
    instead of the shard the line was held on (the bug the state machine must catch)."""

    def apply_status_change(self, change: StatusChange) -> None:
        moved = _to_shard_zero(change.part_changes)
        super().apply_status_change(change.model_copy(update={"part_changes": moved}))

    def apply_parts_change(self, change: PartsChange) -> None:
        moved = _to_shard_zero(change.changes)
        super().apply_parts_change(change.model_copy(update={"changes": moved}))


def mutant_store(resources: Mapping[str, str], ddb: object) -> DynamoTicketStore:
    return ReleasesToShardZero(
        tickets_table=resources["TicketsTable"],
        devices_table=resources["DevicesTable"],
        customers_table=resources["CustomersTable"],
        inventory_table=resources["InventoryTable"],
        ddb=ddb,
    )


class MutantPartsMachine(PartsMachine):
    store_factory = staticmethod(mutant_store)


PartsMachine.TestCase.settings = settings(
    # kept under the suite's 300 s per-test timeout on a loaded machine: moto copies a table
    # for each transaction
    max_examples=5,
    stateful_step_count=10,
    deadline=None,
    # no shrinking: each step costs a few moto transactions; the failing sequence is reported
    # as generated (and replays exactly: every example starts from a fresh account)
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPartsInvariants = PartsMachine.TestCase


class Picks:
    """Fixed draws for calling a rule by hand (`data.draw` returns `pick`)."""

    def __init__(self, pick: int) -> None:
        self.pick = pick

    def draw(self, strategy: object) -> int:
        return self.pick


def walk_holds_then_release(machine: PartsMachine) -> None:
    """The state machine's own rules in a fixed order: one PSU on each of its 4 shards, four
    devices each holding one (on their home shards), then one hold off shard 0 released."""
    machine.scarce_stock([4, 0, 0, 0], opening=4)
    machine.books_balance()
    machine.release_a_hold(Picks(0))
    machine.books_balance()


def test_a_release_to_the_wrong_shard_is_caught() -> None:
    # Given the walk passes on the real store (holds spread over shards, one released)
    walk_holds_then_release(PartsMachine())
    # When it runs against a store that returns released units to shard 0 instead
    # Then the invariant fails, naming the shard whose held no live hold explains
    with pytest.raises(AssertionError, match="live holds naming this shard") as failed:
        walk_holds_then_release(MutantPartsMachine())
    assert "PSU-240-A@WH-SHA shard 0: held 0, but the live holds naming this shard sum to 1" in (
        str(failed.value)
    )
