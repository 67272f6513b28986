"""Real concurrency: 30 threads open tickets needing a part with 4 in stock, on the serial moto
server (one request at a time, transactions atomic like DynamoDB's)."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.inventory import InventoryReader
from aftercare.domain.intake import IntakeRules, OutcomeKind, intake_fault
from aftercare.domain.lifecycle import change_status
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.models.payloads import FaultEnvelope
from aftercare.models.tickets import TicketStatus

from infra.local.motoserver import SerialMotoServer
from infra.local.provision import provision
from infra.local.provision_context import AwsClients, moto_client
from infra.local.seed import seed_demo
from infra.local.template import load_template
from infra.seeding import demo_devices, stock_items
from tests.fakes.tables import ticket_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack() -> Iterator[dict]:
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer() as server:
        clients = AwsClients.for_endpoint(server.url, "us-east-1")
        result = provision(load_template(ROOT / "template.yaml"), clients, endpoint_url=server.url)
        seed_demo(result.resources, server.url, "us-east-1")
        yield {"url": server.url, "resources": result.resources, "clients": clients}


def make_store(stack: dict) -> DynamoTicketStore:
    """A store on a DynamoDB client of its own (boto3 sessions are not thread-safe). Only the one
    client: a session and six clients per fault made this test ~100 s of boto3 set-up."""
    return ticket_store(stack["resources"], moto_client("dynamodb", stack["url"], "us-east-1"))


def envelope(thing: str, n: int) -> FaultEnvelope:
    now = datetime.now(UTC)
    report = {
        "fault_id": f"race-{n:04d}-{thing}",
        "code": "PSU-OVERVOLT",
        "occurred_at": now.isoformat(),
        "firmware": "1.0",
    }
    return FaultEnvelope(
        payload_b64=base64.b64encode(json.dumps(report).encode()).decode(),
        thing=thing,
        received_at=int(now.timestamp() * 1000),
        topic=f"dt/aftercare/{thing}/fault",
    )


def test_thirty_racing_opens_hold_exactly_the_four_in_stock(stack: dict) -> None:
    # Given 4 PSUs in the only warehouse serving ap-east, one on each of the part's 4 stock
    # shards, and 30 devices there
    inventory = stack["resources"]["InventoryTable"]
    for item in stock_items("PSU-240-A", "WH-SHA", 4, 1, shards=4):
        stack["clients"].dynamodb.put_item(TableName=inventory, Item=to_item(item))
    things = [d.thing for d in demo_devices() if d.region == "ap-east"][:30]
    rules = IntakeRules(
        catalog=load_catalog(), policy=load_policy(), repeat_window=timedelta(days=30)
    )
    # When 30 threads open their tickets at once (and each is redelivered once, concurrently)
    jobs = [(thing, n) for n, thing in enumerate(things)] * 2

    per_thread = threading.local()

    def open_one(job: tuple[str, int]) -> OutcomeKind:
        thing, n = job
        if not hasattr(per_thread, "store"):
            per_thread.store = make_store(stack)  # one client per thread
        return intake_fault(envelope(thing, n), per_thread.store, rules).kind

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = Counter(pool.map(open_one, jobs))
    # Then 30 tickets exist, 4 hold a PSU, 26 are backordered, and stock is exactly 0 available
    assert outcomes == {OutcomeKind.OPENED: 30, OutcomeKind.DUPLICATE: 30}
    reader = InventoryReader(table=inventory, ddb=stack["clients"].dynamodb)
    psu = [r for r in reader.reservations() if r["sku"] == "PSU-240-A"]
    assert Counter(r["status"] for r in psu) == {"held": 4, "backordered": 26}
    level = next(i for i in reader.stock() if (i["sku"], i["warehouse"]) == ("PSU-240-A", "WH-SHA"))
    assert (level["on_hand"], level["held"], level["available"]) == (4, 4, 0)
    assert level["backordered"] == 26
    # And each shard's unit went to exactly one ticket: every shard holds one, none below zero
    shards = [
        i for i in reader.stock_shards() if (i["sku"], i["warehouse"]) == ("PSU-240-A", "WH-SHA")
    ]
    assert [(int(i["on_hand"]), int(i["held"]), int(i["available"])) for i in shards] == [
        (1, 1, 0)
    ] * 4
    held_on = Counter(int(r["shard"]) for r in psu if r["status"] == "held")
    assert held_on == {0: 1, 1: 1, 2: 1, 3: 1}


def test_cancelling_the_racers_returns_each_unit_to_the_shard_it_came_from(stack: dict) -> None:
    # Given the 4 PSUs of the race above held by 4 tickets, one on each shard
    inventory = stack["resources"]["InventoryTable"]
    reader = InventoryReader(table=inventory, ddb=stack["clients"].dynamodb)
    store = make_store(stack)
    held = [r for r in reader.reservations() if r["sku"] == "PSU-240-A" and r["status"] == "held"]
    assert sorted(int(r["shard"]) for r in held) == [0, 1, 2, 3]
    # When their tickets are cancelled (the holds released in the status change's transaction)
    for res in held:
        change_status(
            store,
            res["ticket_id"],
            TicketStatus.CANCELLED,
            actor="test",
            reason="race over",
            now=datetime.now(UTC),
        )
    # Then every shard has its one unit available again, none held, and the books balance
    shards = [
        (int(i["shard"]), int(i["on_hand"]), int(i["held"]), int(i["available"]))
        for i in reader.stock_shards()
        if (i["sku"], i["warehouse"]) == ("PSU-240-A", "WH-SHA")
    ]
    assert shards == [(0, 1, 0, 1), (1, 1, 0, 1), (2, 1, 0, 1), (3, 1, 0, 1)]
    mine = {r["reservation_id"]: r["status"] for r in reader.reservations()}
    assert all(mine[r["reservation_id"]] == "released" for r in held)
