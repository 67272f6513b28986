"""The KPI aggregator's write budget per stream batch: each subject's facts written once, each
counter item once per transaction (summed over the batch's tickets), redeliveries not at all,
and a version conflict applied subject by subject without counting twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.kpi_store import DynamoKpiStore
from aftercare.domain.kpi_events import ticket_updates
from aftercare.domain.kpis import load_kpi_definitions
from aftercare.models.kpis import KpiUpdate
from moto import mock_aws

from tests.fakes.tables import create_template_tables

DEFS = load_kpi_definitions()
T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
TABLE = "aftercare-kpis-test"


class CountingClient:
    """The moto client, with every TransactWriteItems' items kept."""

    def __init__(self, ddb: Any) -> None:
        self.ddb = ddb
        self.transactions: list[list[dict[str, Any]]] = []

    def transact_write_items(self, **request: Any) -> Any:
        self.transactions.append(request["TransactItems"])
        return self.ddb.transact_write_items(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ddb, name)

    def wru(self) -> int:
        """On-demand cost: 2 WRU per item (each under 1 KB) written in a transaction."""
        return sum(2 * len(items) for items in self.transactions)


@pytest.fixture
def ddb(fake_aws_credentials: None) -> Iterator[CountingClient]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_template_tables(client, ("KpiTable",))
        yield CountingClient(client)


def new_fault(ticket_id: str, region: str) -> list[KpiUpdate]:
    """A new fault's ticket events: opened, then the first response (automatic diagnostics)."""
    opened = {"ticket_id": ticket_id, "region": region, "model": "RT-1", "category": "power",
              "priority": "P2", "status": "open", "version": 1, "opened_at": T0.isoformat(),
              "updated_at": T0.isoformat(),
              "sla_response_due": (T0 + timedelta(hours=4)).isoformat()}  # fmt: skip
    responded = opened | {
        "status": "diagnosing",
        "version": 2,
        "updated_at": (T0 + timedelta(minutes=5)).isoformat(),
    }
    return [
        *ticket_updates(f"r1-{ticket_id}", None, opened, DEFS),
        *ticket_updates(f"r2-{ticket_id}", opened, responded, DEFS),
    ]


def counters(ddb: CountingClient, dim: str) -> dict[str, Any]:
    store = DynamoKpiStore(table=TABLE, defs=DEFS, ddb=ddb)
    return store.counters(dim, T0.date(), T0.date())[0]


def written_keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    keys = []
    for item in items:
        request = item.get("Put") or item.get("Update") or {}
        key = request.get("Item") or request["Key"]
        keys.append((key["pk"]["S"], key["sk"]["S"]))
    return keys


def test_a_batch_of_new_faults_writes_each_counter_item_once(ddb: CountingClient) -> None:
    # Given a batch with 10 new faults (opened + first response each) in two regions
    store = DynamoKpiStore(table=TABLE, defs=DEFS, ddb=ddb)
    batch = [u for i in range(10) for u in new_fault(f"T-{i}", ("eu-west", "ap-east")[i % 2])]
    # When the aggregator applies it
    applied = store.apply(batch, NOW)
    # Then one transaction: 10 facts, one ADD per counter item (all, 2 regions, model, category,
    # channel, priority: 7 values x DAY and OPENED) and each dimension value listed once
    assert len(ddb.transactions) == 1
    keys = written_keys(ddb.transactions[0])
    assert len(keys) == len(set(keys)) == 10 + 7 * 2 + 6
    assert ddb.wru() == 2 * 30  # 6 WRU per new fault (38 before: one transaction per event)
    assert (
        counters(ddb, "all#all")["opened"] == 10
        and applied.diff[("all#all", "DAY#2026-12-01", "responded")] == 10
    )
    # And a second batch lists no dimension value again: facts and counter items only
    store.apply(new_fault("T-10", "eu-west"), NOW)
    assert len(ddb.transactions[1]) == 1 + 6 * 2


def test_a_redelivered_batch_writes_nothing_and_counts_nothing(ddb: CountingClient) -> None:
    # Given a new fault counted
    store = DynamoKpiStore(table=TABLE, defs=DEFS, ddb=ddb)
    store.apply(new_fault("T-1", "eu-west"), NOW)
    # When the stream redelivers its records, in the other order
    applied = store.apply(list(reversed(new_fault("T-1", "eu-west"))), NOW)
    # Then no transaction is written, both events are absorbed, and it is counted once
    assert len(ddb.transactions) == 1 and applied.absorbed == 2 and not applied.diff
    assert counters(ddb, "all#all")["opened"] == 1


def test_a_version_conflict_falls_back_to_one_subject_at_a_time(ddb: CountingClient) -> None:
    # Given a batch planned while another aggregator counts the same ticket's opening
    store = DynamoKpiStore(table=TABLE, defs=DEFS, ddb=ddb)
    other = DynamoKpiStore(table=TABLE, defs=DEFS, ddb=ddb)
    plan = store.plan

    def plan_then_race(subject: Any) -> Any:
        planned = plan(subject)
        if not ddb.transactions:
            other.apply(new_fault("T-1", "eu-west")[:1], NOW)
        return planned

    store.plan = plan_then_race  # type: ignore[method-assign]
    # When the batch (T-1 and T-2, opened + responded) is applied
    applied = store.apply(new_fault("T-1", "eu-west") + new_fault("T-2", "ap-east"), NOW)
    # Then the chunk is cancelled by T-1's version, each ticket is applied alone, nothing fails,
    # and T-1's opening is counted once
    _other, cancelled_chunk, *alone = ddb.transactions
    assert not applied.failed and len(cancelled_chunk) == 2 + 7 * 2 + 6 and len(alone) == 2
    assert counters(ddb, "all#all")["opened"] == 2
    assert counters(ddb, "all#all")["responded"] == 2
