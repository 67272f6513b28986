"""Spare parts end to end: 30 devices fight over 4 power supplies through the whole stack; the
PSU's stock is split over 4 shard items, and no shard is oversold."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aftercare.adapters.inventory import DynamoInventoryWriter, InventoryReader
from aftercare.domain.stock import adjust_stock

from devices.config import IngestRules
from devices.fleet import FleetSimulator
from devices.scenario import DeviceSpec, Scenario, Storm
from infra.seeding import demo_devices
from tests.e2e.conftest import Stack, settle, wait_for

SKU, WAREHOUSE, CODE = "PSU-240-A", "WH-SHA", "PSU-OVERVOLT"


def stock_of(reader: InventoryReader) -> dict:
    return next(i for i in reader.stock() if (i["sku"], i["warehouse"]) == (SKU, WAREHOUSE))


def test_thirty_concurrent_faults_share_four_units(local_stack: Stack, tmp_path: Path) -> None:
    # Given 30 devices served only by the Shanghai warehouse, which has exactly 4 PSUs available
    table = local_stack.target.resource("InventoryTable")
    ddb = local_stack.target.client("dynamodb")
    reader = InventoryReader(table=table, ddb=ddb)
    before = stock_of(reader)
    adjust_stock(
        DynamoInventoryWriter(table=table, ddb=ddb),
        SKU,
        WAREHOUSE,
        4 - int(before["available"]),
        reason="test: exactly four available",
        actor="e2e",
        now=datetime.now(UTC),
    )
    ap_east = [d for d in demo_devices() if d.region == "ap-east"]
    fleet = [DeviceSpec(thing=d.thing, model=d.model) for d in ap_east[-30:]]
    scenario = Scenario(
        duration_s=2, fault_rate=0, storms=[Storm(code=CODE, at_s=0.2, device_share=1.0)]
    )
    # When they all report a PSU over-voltage at the same moment
    result = FleetSimulator(
        fleet,
        scenario,
        local_stack.mqtt_url,
        tmp_path,
        codes_by_model={d.model: [CODE] for d in fleet},
        credentials_dir=Path(local_stack.state["devices_dir"]),
        ingest_rules=IngestRules.of_stack(local_stack.state),
    ).run()
    assert result.storm_faults == 30 and result.outbox_backlog == 0
    settle(local_stack, timeout=120)
    things = {d.thing for d in fleet}

    def all_tickets() -> list | None:
        found = [t for t in local_stack.tickets.list_tickets() if t.thing in things]
        found = [t for t in found if t.fault_code == CODE]
        return found if len(found) == 30 else None

    tickets = wait_for(all_tickets, what="30 tickets")
    # Then exactly 4 are held, 26 backordered, the warehouse has none left, and the books balance
    lines = [p for t in tickets for p in t.parts if p.sku == SKU]
    statuses = sorted(p.status for p in lines)
    assert statuses.count("held") == 4 and statuses.count("backordered") == 26
    after = stock_of(reader)
    assert after["available"] == 0
    assert after["held"] == int(before["held"]) + 4
    assert after["on_hand"] == after["available"] + after["held"]
    mine = [r for r in reader.reservations() if r["ticket_id"] in {t.ticket_id for t in tickets}]
    assert len(mine) == 30 and sum(r["status"] == "held" for r in mine) == 4
    for res in mine:  # no orphan: every reservation matches its ticket's parts line
        ticket = local_stack.tickets.get_ticket(res["ticket_id"]).ticket
        assert ticket.parts[int(res["line_index"])].status == res["status"]
    # And per shard: never oversold, its holds are exactly the held reservations naming it, and
    # the shards sum to the quantity the test set (4 available) minus the live holds
    shards = [s for s in reader.stock_shards() if (s["sku"], s["warehouse"]) == (SKU, WAREHOUSE)]
    assert len(shards) == 4
    live = [r for r in reader.reservations() if (r["sku"], r["warehouse"]) == (SKU, WAREHOUSE)]
    live = [r for r in live if r["status"] == "held"]
    for shard in shards:
        on_hand, held, available = (int(shard[k]) for k in ("on_hand", "held", "available"))
        assert available >= 0 and on_hand == available + held, shard
        on_it = [r for r in live if int(r.get("shard", 0)) == int(shard["shard"])]
        assert held == sum(int(r["qty"]) for r in on_it), shard
    assert sum(int(s["available"]) for s in shards) == 4 - sum(
        int(r["qty"]) for r in mine if r["status"] == "held"
    )
