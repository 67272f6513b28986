"""DynamoHealthStore on moto, tables built from template.yaml's properties: the watermark
condition, the sparse index of pending checks, and the requests' shapes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.health import (
    DynamoHealthStore,
    health_item,
    health_put_request,
)
from aftercare.domain.health import DeviceHealth
from aftercare.domain.ports.health import HealthConflict
from moto import mock_aws

from tests.fakes.tables import create_template_tables

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
DEVICES, HEALTH = "aftercare-devices-test", "aftercare-device-health-test"


@pytest.fixture
def ddb(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        create_template_tables(client, ("DevicesTable", "DeviceHealthTable"))
        for n in range(60):
            device = {"thing": f"ac-{n}", "model": "AC-HP", "customer_id": "c-1"}
            client.put_item(TableName=DEVICES, Item=to_item(device | {"region": "eu-west"}))
        yield client


@pytest.fixture
def store(ddb: Any) -> DynamoHealthStore:
    return DynamoHealthStore(devices_table=DEVICES, health_table=HEALTH, ddb=ddb)


def health(thing: str, sent: datetime, **changes: Any) -> DeviceHealth:
    return DeviceHealth(
        thing=thing,
        model="AC-HP",
        customer_id="c-1",
        firmware="2.0.1",
        uptime_s=10,
        first_seen=NOW,
        last_seen=sent,
        last_sent_at=sent,
        next_check_at=sent + timedelta(minutes=30),
        **changes,
    )


def test_a_batch_read_covers_more_than_one_request_and_says_who_is_registered(store):
    store.save(health("ac-7", NOW), previous=None)
    views = store.read([f"ac-{n}" for n in range(60)] + ["ghost-1"])
    assert len(views) == 60 and "ghost-1" not in views
    assert views["ac-7"].health == health("ac-7", NOW) and views["ac-8"].health is None
    assert (views["ac-7"].model, views["ac-7"].region) == ("AC-HP", "eu-west")


def test_a_write_over_a_moved_watermark_is_a_conflict(store):
    # Given a health item written at NOW
    store.save(health("ac-1", NOW), previous=None)
    # When a writer that read nothing, or an older watermark, writes
    with pytest.raises(HealthConflict):
        store.save(health("ac-1", NOW + timedelta(seconds=5)), previous=None)
    with pytest.raises(HealthConflict):
        store.save(health("ac-1", NOW + timedelta(seconds=5)), previous=NOW - timedelta(1))
    # Then only the writer that read the current watermark succeeds
    store.save(health("ac-1", NOW + timedelta(seconds=5)), previous=NOW)
    assert store.read(["ac-1"])["ac-1"].health.last_sent_at == NOW + timedelta(seconds=5)


def test_only_pending_checks_are_in_the_sparse_index(store):
    store.save(health("ac-1", NOW), previous=None)
    store.save(health("ac-2", NOW - timedelta(hours=1)), previous=None)
    offline = health("ac-3", NOW - timedelta(hours=2), offline_since=NOW - timedelta(hours=1))
    store.save(offline, previous=None)
    # Then only ac-2's check is due (ac-1's is later, ac-3 is already marked offline)
    assert store.due_checks(NOW, limit=10) == ["ac-2"]
    assert "check_shard" not in health_item(offline)


def test_the_put_request_names_its_condition():
    first = health_put_request(HEALTH, health("ac-1", NOW), previous=None)
    later = health_put_request(HEALTH, health("ac-1", NOW), previous=NOW)
    assert first["ConditionExpression"] == "attribute_not_exists(thing)"
    assert later["ConditionExpression"] == "last_sent_at = :previous"
    assert later["ExpressionAttributeValues"] == {":previous": {"S": NOW.isoformat()}}
    assert later["Item"]["kind"] == {"S": "HEALTH"}
