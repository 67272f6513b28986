"""Global secondary index writes in the cost model: the arithmetic against hand-computed cases
(AWS "Provisioned throughput considerations for global secondary indexes"), the template's
index definitions, the recorded images and the cost lines they feed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.bench import capacity, cost
from infra.bench.capture import written_items

ROOT = Path(__file__).resolve().parents[2]
TABLE_KEYS = ("pk", "sk")
ALL = capacity.IndexSpec("by_thing", ("thing", "opened_key"), "ALL")
KEYS_ONLY = capacity.IndexSpec("by_thing", ("thing", "opened_key"), "KEYS_ONLY")
BY_STATUS = capacity.IndexSpec("by_status", ("status", "opened_key"), "ALL")
INCLUDE = capacity.IndexSpec("by_escalation", ("esc_bucket",), "INCLUDE", ("esc_index",))


def _ticket(**extra: dict) -> dict:
    # pk 2+8, sk 2+4, thing 5+5, opened_key 10+22: 58 bytes of keys
    return {
        "pk": {"S": "TICKET#1"},
        "sk": {"S": "META"},
        "thing": {"S": "dev-1"},
        "opened_key": {"S": "2026-12-06T00:00:00Z#1"},
        **extra,
    }


NOTE_1000 = {"note": {"S": "x" * 1000}}  # 4 + 1000 bytes


def test_a_keys_only_entry_holds_the_table_and_index_keys_and_is_sized_like_an_item():
    # Given a ticket of 1062 bytes (58 of keys + a 1004-byte attribute)
    item = _ticket(**NOTE_1000)
    assert capacity.item_size(item) == 1062
    # When its entries are projected
    keys_only, everything = KEYS_ONLY.entry(TABLE_KEYS, item), ALL.entry(TABLE_KEYS, item)
    # Then KEYS_ONLY keeps the 58 bytes of keys, ALL the whole item
    assert capacity.item_size(keys_only) == 58
    assert everything == item


def test_a_new_item_puts_one_entry_per_index_it_has_the_keys_of():
    # Given a new ticket of 1062 bytes
    new = _ticket(**NOTE_1000)
    # When it is put: Then ALL writes 2 KB-units (1062 B), KEYS_ONLY 1, a sparse index whose
    # key the item lacks nothing
    assert ALL.write_units(TABLE_KEYS, None, new) == 2
    assert KEYS_ONLY.write_units(TABLE_KEYS, None, new) == 1
    assert INCLUDE.write_units(TABLE_KEYS, None, new) == 0


def test_an_update_of_an_attribute_rewrites_only_the_entries_that_project_it():
    # Given a ticket, and the same ticket with one more occurrence
    old = _ticket(occurrences={"N": "1"}, esc_bucket={"S": "ESC#1"}, esc_index={"N": "0"})
    new = {**old, "occurrences": {"N": "2"}}
    # Then ALL rewrites its entry (1 WRU, under 1 KB), KEYS_ONLY and INCLUDE [esc_index]
    # write nothing
    assert ALL.write_units(TABLE_KEYS, old, new) == 1
    assert KEYS_ONLY.write_units(TABLE_KEYS, old, new) == 0
    assert INCLUDE.write_units(TABLE_KEYS, old, new) == 0
    # and an INCLUDE entry is rewritten when its projected attribute changes
    assert INCLUDE.write_units(TABLE_KEYS, old, {**old, "esc_index": {"N": "1"}}) == 1


def test_an_index_key_change_is_a_delete_and_a_put():
    # Given a 1062-byte ticket moving from open to diagnosing
    old = _ticket(status={"S": "open"}, **NOTE_1000)  # 1062 + 6 + 4 = 1072 bytes
    new = {**old, "status": {"S": "diagnosing"}}  # 1078 bytes
    # Then by_status (ALL) deletes the old entry (2 units) and puts the new one (2 units)
    assert BY_STATUS.write_units(TABLE_KEYS, old, new) == 4
    # and by_thing, whose keys did not change, rewrites its ALL entry once, KEYS_ONLY not at all
    assert ALL.write_units(TABLE_KEYS, old, new) == 2
    assert KEYS_ONLY.write_units(TABLE_KEYS, old, new) == 0


def test_removing_a_sparse_index_key_deletes_the_entry_sized_by_the_old_entry():
    old = _ticket(esc_bucket={"S": "ESC#1"}, esc_index={"N": "0"}, **NOTE_1000)
    new = {k: v for k, v in old.items() if k not in ("esc_bucket", "esc_index")}
    assert INCLUDE.write_units(TABLE_KEYS, old, new) == 1
    # a deleted item (no new image) deletes every entry it had
    assert ALL.write_units(TABLE_KEYS, old, None) == 2
    # an item in the index neither before nor after costs nothing
    assert INCLUDE.write_units(TABLE_KEYS, new, {**new, "x": {"S": "y"}}) == 0


def test_the_template_gives_each_tables_keys_and_indexes_by_name_pattern():
    # Given the template
    indexes = capacity.TableIndexes.from_template(ROOT / "template.yaml")
    # When the local stack's tickets table is looked up
    keys, specs = indexes.of("aftercare-tickets-local")
    # Then it has its key and its six indexes, with their projections
    assert keys == ("pk", "sk")
    by_name = {spec.name: spec for spec in specs}
    assert set(by_name) == {
        "by_status",
        "by_thing",
        "by_diag_deadline",
        "by_escalation",
        "by_customer",
        "by_engineer_fault",
    }
    assert by_name["by_escalation"].projection == "INCLUDE"
    assert by_name["by_escalation"].non_key == ("esc_index",)
    assert by_name["by_thing"].keys == ("thing", "opened_key")
    # and a table the template does not have has no index
    assert indexes.of("elsewhere") == ((), ())


def _indexes() -> capacity.TableIndexes:
    return capacity.TableIndexes({"tickets-*": (TABLE_KEYS, (BY_STATUS, KEYS_ONLY, INCLUDE))})


def test_a_transactions_index_writes_are_standard_writes_and_a_failed_one_writes_none():
    # Given a transaction that puts a 1072-byte open ticket and checks a condition
    ticket = _ticket(status={"S": "open"}, **NOTE_1000)
    record = {
        "op": "TransactWriteItems",
        "status": 200,
        "request": {
            "TransactItems": [
                {"Put": {"TableName": "tickets-local", "Item": ticket}},
                {"ConditionCheck": {"TableName": "tickets-local", "Key": {"pk": {"S": "L"}}}},
            ]
        },
        "images": [{"table": "tickets-local", "key": {}, "old": None, "new": ticket}],
    }
    # When its units are computed with the indexes
    units = capacity.units_of([record], lambda table, key: 100, _indexes())
    # Then the table pays 2 x 2 (put, 2 KB) + 2 (check), the indexes 2 (by_status, ALL) + 1
    # (by_thing, KEYS_ONLY), not doubled
    assert units.write_total == 6
    assert units.gsi_writes == {
        "tickets-local/by_status": 2,
        "tickets-local/by_thing": 1,
        "tickets-local/by_escalation": 0,
    }
    figures = units.as_dict()
    assert figures["gsi_write_units"] == 3
    assert figures["gsi_write_units_by_index"] == {
        "tickets-local/by_status": 2,
        "tickets-local/by_thing": 1,
    }
    # and the same transaction refused by its condition writes no index entry
    failed = capacity.units_of([{**record, "status": 400}], lambda t, k: 100, _indexes())
    assert failed.gsi_write_total == 0 and failed.write_total == 6
    # and without the indexes nothing is counted (a results file from before)
    assert capacity.units_of([record], lambda t, k: 100).gsi_write_total == 0


def test_the_written_items_of_each_write_request_are_listed_for_their_images():
    def key_of(table: str, item: dict) -> dict:
        return {"pk": item["pk"]}

    put = {"TableName": "t", "Item": {"pk": {"S": "a"}, "x": {"N": "1"}}}
    assert written_items("PutItem", put, key_of) == [("t", {"pk": {"S": "a"}})]
    assert written_items("UpdateItem", {"TableName": "t", "Key": {"pk": {"S": "b"}}}, key_of) == [
        ("t", {"pk": {"S": "b"}})
    ]
    transaction = {
        "TransactItems": [
            {"Put": put},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "c"}}}},
            {"Delete": {"TableName": "u", "Key": {"pk": {"S": "d"}}}},
        ]
    }
    assert written_items("TransactWriteItems", transaction, key_of) == [
        ("t", {"pk": {"S": "a"}}),
        ("u", {"pk": {"S": "d"}}),
    ]
    batch = {
        "RequestItems": {
            "t": [{"PutRequest": {"Item": put["Item"]}}, {"DeleteRequest": {"Key": {"pk": 1}}}]
        }
    }
    assert written_items("BatchWriteItem", batch, key_of) == [
        ("t", {"pk": {"S": "a"}}),
        ("t", {"pk": 1}),
    ]


def _results(gsi: float | None) -> dict:
    units = {"read_units": 4.0, "write_units": 8.0, "requests": {}}
    if gsi is not None:
        units |= {
            "gsi_write_units": gsi,
            "gsi_write_units_by_index": {"aftercare-tickets-local/by_status": gsi},
        }
    return {"steps": {"new": {"FaultIntakeFunction": units}}, "gsi_counted": gsi is not None}


def test_gsi_write_units_are_priced_as_write_units_and_printed_per_step():
    prices = cost.Prices(json.loads((ROOT / "bench" / "prices.json").read_text()))
    # Given 4 GSI WRU per new fault
    capacity_units = _results(4.0)
    # When the DynamoDB lines are priced
    lines = {
        line.item: line
        for line in cost.dynamodb_lines(
            prices, capacity_units["steps"]["new"], ["FaultIntakeFunction"]
        )
    }
    # Then they cost what 4 table WRU cost, on a line of their own
    assert lines["DynamoDB GSI write request units"].quantity == 4
    assert lines["DynamoDB GSI write request units"].usd_per_million_events == pytest.approx(
        lines["DynamoDB write request units"].usd_per_million_events / 2
    )
    assert "| new | FaultIntakeFunction | 4 | tickets/by_status 4 |" in cost.gsi_table(
        capacity_units
    )
    # and a file measured before index writes were counted says so
    assert "not counted" in cost.gsi_table(_results(None))[0]


def test_the_recorder_keeps_each_written_items_image_before_and_after(tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    from infra.bench.capture import SWITCH, Recorder, read_records

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        # Given a table and a client the recorder is attached to, capture on
        ddb = boto3.client("dynamodb")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        Recorder(tmp_path).attach(ddb)
        (tmp_path / SWITCH).touch()
        # When an item is put, then updated
        ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
        ddb.update_item(
            TableName="t",
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "2"}},
        )
    # Then two requests are recorded (not the recorder's own reads), each with its item's images
    records = read_records(tmp_path)
    assert [r["op"] for r in records] == ["PutItem", "UpdateItem"]
    put, update = (r["images"] for r in records)
    assert put == [
        {
            "table": "t",
            "key": {"pk": {"S": "a"}},
            "old": None,
            "new": {"pk": {"S": "a"}, "n": {"N": "1"}},
        }
    ]
    assert update[0]["old"]["n"] == {"N": "1"} and update[0]["new"]["n"] == {"N": "2"}
