"""The benchmark harness's pure parts: percentiles, saturation, capacity units, cost, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.bench import capacity, cost, report
from infra.bench.load import first_per_thing, messages_sent, moto_figures, schedule
from infra.bench.observe import invocation_figures, stats_delta
from infra.bench.publisher import DEVICES_PER_SHARD, shard_of
from infra.bench.stats import (
    next_probe,
    overloaded,
    percentile,
    reference_phase,
    saturation_point,
    summary,
)

ROOT = Path(__file__).resolve().parents[2]


# ---- percentiles and the saturation point -------------------------------------------------


def test_percentiles_use_the_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_percentile_outside_0_to_100_is_an_error():
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_counts_faults_that_never_got_a_ticket_as_missing():
    figures = summary([0.1, 0.2, 0.3], expected=5)
    assert figures == {"n": 3, "p50_s": 0.2, "p99_s": 0.3, "max_s": 0.3, "missing": 2}


def _phase(rate: float, p99: float, missing: int = 0, achieved: float | None = None) -> dict:
    return {
        "rate": rate,
        "achieved_rate": rate if achieved is None else achieved,
        "fault_to_ticket": {"n": 10, "p99_s": p99, "missing": missing},
    }


def test_saturation_is_the_highest_sustained_rate_with_no_ticket_lost_below_it():
    phases = [_phase(5, 0.4), _phase(20, 0.9), _phase(50, 2.5, missing=3), _phase(100, 1.0)]
    # Given 50/s lost tickets, 100/s "passing" afterwards does not count
    assert saturation_point(phases) == 20


def test_a_slow_trickle_below_the_saturation_point_does_not_hide_it():
    # the fault queue's batching window makes 5/s wait longer than 20/s; nothing was lost
    assert saturation_point([_phase(5, 2.1), _phase(20, 1.5), _phase(50, 2.5)]) == 20


def test_a_rate_with_lost_faults_or_a_publisher_that_fell_behind_is_not_sustained():
    assert saturation_point([_phase(5, 0.4), _phase(20, 0.5, missing=1)]) == 5
    assert saturation_point([_phase(5, 0.4), _phase(20, 0.5, achieved=12), _phase(50, 1)]) == 5
    assert saturation_point([_phase(5, 3.0)]) is None


def test_a_phase_that_lost_most_tickets_overloads_the_stack():
    assert not overloaded([])
    assert not overloaded([_phase(5, 0.4, missing=0)])
    assert overloaded([{"fault_to_ticket": {"n": 40, "missing": 60}}])


def test_saturation_search_doubles_then_bisects_and_stops_within_ten_percent():
    assert next_probe(100, None, ceiling=400) == 200
    assert next_probe(400, None, ceiling=400) is None
    assert next_probe(20, 50, ceiling=400) == 35
    assert next_probe(46, 50, ceiling=400) is None


# ---- load plan and moto figures -----------------------------------------------------------


def test_every_fault_of_a_phase_is_a_distinct_device_and_code():
    plan = schedule(30, devices=10)
    assert len(set(plan)) == 30
    assert {device for device, _ in plan[:10]} == set(range(10))
    with pytest.raises(ValueError):
        schedule(31, devices=10)


def test_publisher_shards_keep_each_device_in_one_process_and_the_global_order():
    things = [f"d{n}" for n in range(400)]
    split = shard_of(things, schedule(1000, devices=400))
    assert len(split) == 3
    assert sum(len(shard) for shard in split) == 1000
    for shard in split:
        assert len({thing for _, thing, _ in shard}) <= DEVICES_PER_SHARD
        assert [index for index, _, _ in shard] == sorted(index for index, _, _ in shard)
    owners = [{thing for _, thing, _ in shard} for shard in split]
    assert not owners[0] & owners[1]


def test_first_time_per_device():
    times = {("d1", "A"): 3.0, ("d1", "B"): 1.0, ("d2", "A"): 2.0}
    assert first_per_thing(times) == {"d1": 1.0, "d2": 2.0}


def test_stats_delta_takes_the_benchmarks_own_requests_off():
    before = {"uptime_s": 10.0, "operations": {"DynamoDB.PutItem": {"requests": 5, "busy_s": 1.0}}}
    after = {
        "uptime_s": 20.0,
        "operations": {
            "DynamoDB.PutItem": {"requests": 25, "busy_s": 2.0},
            "DynamoDBStreams.GetRecords": {"requests": 4, "busy_s": 0.1},
        },
    }
    delta = stats_delta(before, after, own={"DynamoDBStreams.GetRecords": 4})
    assert delta["wall_s"] == 10.0
    assert delta["served"] == 24
    assert delta["operations"] == {"DynamoDB.PutItem": {"requests": 20, "busy_s": 1.0}}


def test_moto_figures_take_the_idle_pollers_off_and_give_the_ceiling():
    delta = {
        "wall_s": 10.0,
        "served": 300,
        "operations": {
            "SQS.ReceiveMessage": {"requests": 200, "busy_s": 1.0},
            "DynamoDB.TransactWriteItems": {"requests": 100, "busy_s": 2.0},
        },
    }
    figures = moto_figures(delta, faults=100, idle_rps={"SQS.ReceiveMessage": 15.0})
    assert figures["requests_per_fault"] == {
        "DynamoDB.TransactWriteItems": 1.0,
        "SQS.ReceiveMessage": 0.5,
    }
    assert figures["busy_share"] == 0.3
    assert figures["ceiling_requests_per_s"] == 100.0
    assert figures["requests_per_s"] == 30.0


def test_customer_messages_are_ses_sends_and_sns_publishes():
    operations = {
        "SES.SendEmail": {"requests": 3},
        "SNS.Publish": {"requests": 2},
        "SNS.CreateTopic": {"requests": 1},
        "DynamoDB.PutItem": {"requests": 9},
    }
    assert messages_sent(operations) == 5


def test_worker_report_lines_give_invocations_and_duration():
    text = (
        "x REPORT RequestId: a Source: sqs:q Duration: 12.50 ms Status: ok\n"
        "other line\n"
        "y REPORT RequestId: b Source: stream:t Duration: 7.50 ms Status: error\n"
    )
    assert invocation_figures(text) == (2, 20.0)


# ---- capacity units -----------------------------------------------------------------------


def test_item_size_follows_the_billing_rules():
    # name bytes + value: string bytes; number 1 byte per 2 significant digits + 1; bool 1;
    # map/list 3 + 1 per element
    assert capacity.item_size({"pk": {"S": "abc"}}) == 5
    assert capacity.item_size({"n": {"N": "12345"}}) == 1 + 4
    assert capacity.item_size({"b": {"BOOL": True}}) == 2
    assert capacity.item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + 1 + 1 + 1
    assert capacity.item_size({"l": {"L": [{"S": "ab"}, {"NULL": True}]}}) == 1 + 3 + 3 + 2


def test_units_round_up_per_kb_for_writes_and_per_4kb_for_reads():
    assert capacity.write_units(10) == 1
    assert capacity.write_units(1025) == 2
    assert capacity.write_units(10, transactional=True) == 2
    assert capacity.read_units(0) == 0.5
    assert capacity.read_units(4097, consistent=True) == 2
    assert capacity.read_units(100, transactional=True) == 2


def _item(size_hint: int) -> dict:
    return {"pk": {"S": "x" * size_hint}}


def test_a_five_item_transaction_of_small_items_costs_ten_write_units():
    record = {
        "op": "TransactWriteItems",
        "request": {
            "TransactItems": [
                {"Put": {"TableName": "tickets", "Item": _item(100)}},
                {"Put": {"TableName": "tickets", "Item": _item(100)}},
                {"Put": {"TableName": "tickets", "Item": _item(100)}},
                {"Update": {"TableName": "tickets", "Key": _item(10)}},
                {"ConditionCheck": {"TableName": "devices", "Key": _item(10)}},
            ]
        },
    }
    units = capacity.units_of([record], lambda table, key: 300)
    assert units.write_total == 10
    assert units.writes == {"tickets": 8, "devices": 2}
    assert units.requests == {"TransactWriteItems": 1}


def test_reads_count_found_and_missing_items():
    batch = {
        "op": "BatchGetItem",
        "request": {"RequestItems": {"t": {"Keys": [_item(1)] * 4, "ConsistentRead": True}}},
        "response": {"Responses": {"t": [_item(5000), _item(10)]}},
    }
    get = {"op": "GetItem", "request": {"TableName": "c", "Key": _item(1)}, "response": {}}
    query = {
        "op": "Query",
        "request": {"TableName": "n"},
        "response": {"Items": [_item(3000), _item(3000)]},
    }
    units = capacity.units_of([batch, get, query], lambda table, key: None)
    # 5 KB item: 2 units, small: 1, two missing: 1 each; missing Get: 0.5; 6 KB query: 2 x 0.5
    assert units.reads == {"t": 5.0, "c": 0.5, "n": 1.0}


def test_updates_are_sized_by_the_item_read_back_and_the_keys_to_read_are_listed():
    update = {"op": "UpdateItem", "request": {"TableName": "t", "Key": {"pk": {"S": "a"}}}}
    assert capacity.units_of([update], lambda table, key: 2048).write_total == 2
    assert capacity.units_of([update], lambda table, key: None).write_total == 1
    assert capacity.keys_to_size([update]) == {("t", capacity.key_text({"pk": {"S": "a"}}))}


def test_what_moto_reported_is_kept_beside_the_computed_units():
    record = {
        "op": "PutItem",
        "request": {"TableName": "t", "Item": _item(3000)},
        "response": {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}},
    }
    units = capacity.units_of([record], lambda table, key: None)
    assert units.write_total == 3
    assert units.as_dict()["moto_reported_units"] == 1.0
    assert capacity.reported_units({"ConsumedCapacity": [{"CapacityUnits": 2}, {}]}) == 2


def test_units_per_fault_divide_by_the_number_of_faults():
    units = capacity.Units()
    units.write("t", 30)
    units.read("t", 3)
    units.count("PutItem")
    assert units.as_dict(per=3)["write_units"] == 10
    assert units.as_dict(per=3)["requests"] == {"PutItem": 0.333}


# ---- cost model ---------------------------------------------------------------------------


def _prices() -> cost.Prices:
    return cost.Prices(json.loads((ROOT / "bench" / "prices.json").read_text()))


def test_the_price_file_names_its_date_region_and_currency():
    document = _prices().document
    assert document["region"] == "us-east-1"
    assert document["currency"] == "USD"
    assert document["as_of"]


def test_ten_write_units_cost_six_dollars_25_per_million_faults():
    line = _prices().line("writes", 10, "WRU", "dynamodb_write_request_unit")
    assert line.usd_per_million_events == pytest.approx(6.25)


def test_lambda_duration_is_priced_at_the_templates_memory():
    memory = cost.lambda_settings(ROOT / "template.yaml")
    assert memory["FaultIntakeFunction"] == (512, "arm64")
    functions = {"FaultIntakeFunction": {"invocations_per_fault": 0.1, "mean_duration_ms": 200.0}}
    requests, duration = cost.lambda_lines(_prices(), functions, memory, ["FaultIntakeFunction"])
    assert requests.quantity == pytest.approx(0.1)
    assert duration.quantity == pytest.approx(0.1 * 0.2 * 0.5)  # GB-s
    assert duration.usd_per_million_events == pytest.approx(0.01 * 0.0000133334 * 1e6)


def _results() -> dict:
    def phase(rate: float) -> dict:
        return {
            "rate": rate,
            "achieved_rate": rate,
            "faults": 100,
            "fault_to_puback": {"n": 100, "p50_s": 0.002, "p99_s": 0.01, "missing": 0},
            "fault_to_ticket": {"n": 100, "p50_s": 0.3, "p99_s": 0.9, "missing": 0},
            "fault_to_first_notification": {"n": 34, "p50_s": 0.8, "p99_s": 1.5, "missing": 0},
            "diagnostics_round_trip": {"n": 100, "p50_s": 0.6, "p99_s": 1.1, "missing": 0},
            "functions": {
                "FaultIntakeFunction": {
                    "invocations_per_fault": 0.1,
                    "mean_duration_ms": 100.0,
                    "log_bytes_per_fault": 1000.0,
                },
                "NotifierFunction": {
                    "invocations_per_fault": 0.5,
                    "mean_duration_ms": 50.0,
                    "log_bytes_per_fault": 500.0,
                },
            },
            "moto": {
                "wall_s": 10.0,
                "requests": 500,
                "requests_per_s": 50.0,
                "busy_share": 0.5,
                "ceiling_requests_per_s": 100.0,
                "requests_per_fault": {"SQS.SendMessage": 1.0, "SES.SendEmail": 0.25},
            },
        }

    series = {
        "phases": [phase(5), phase(20)],
        "saturation_rate": 20,
        "search_complete": True,
        "skipped_rates": [100],
    }
    units = {"read_units": 4.5, "write_units": 10.0, "requests": {}}
    return {
        "meta": {"taken_at": "2026-12-06T03:00:00+00:00", "seconds_per_rate": 5, "note": "short"},
        "full_stack": series,
        "fault_path_only": series,
        "capacity_units": {
            "steps": {
                "new": {"FaultIntakeFunction": units, "NotifierFunction": units},
                "correlated": {"FaultIntakeFunction": {**units, "write_units": 8.0}},
                "duplicate": {"FaultIntakeFunction": {**units, "write_units": 0.0}},
            },
            "per_notification": {"read_units": 1.0, "write_units": 5.0},
        },
        "cold_start": {
            "mode": "tracer-on",
            "runs": 1,
            "baseline_ms": 100.0,
            "functions": {"FaultIntakeFunction": {"ms": 300.0, "ratio": 3.0}},
            "whole_process": {
                "clock": "process-cpu",
                "baseline_ms": 120.0,
                "functions": {"FaultIntakeFunction": {"ms": 240.0, "ratio": 2.0}},
            },
        },
    }


def test_cost_models_itemise_each_kind_of_event():
    prices = _prices()
    memory = cost.lambda_settings(ROOT / "template.yaml")
    models = {
        **cost.intake_model(prices, _results(), memory),
        **cost.stack_model(prices, _results(), memory),
    }
    assert set(models) >= {
        "new fault, fault path",
        "correlated fault, fault path",
        "duplicate fault, fault path",
        "new fault, fault path, X-Ray + logs",
        "new fault, whole stack",
        "notification (email)",
    }
    new = {line.item: line for line in models["new fault, fault path"]}
    assert new["DynamoDB write request units"].usd_per_million_events == pytest.approx(6.25)
    assert new["SQS requests"].quantity == pytest.approx(1.0)
    email = {line.item: line for line in models["notification (email)"]}
    assert email["SES emails"].usd_per_million_events == pytest.approx(100.0)
    # the notifier's invocations per message: 0.5 per fault / 0.25 messages per fault
    assert email["Lambda requests"].quantity == pytest.approx(2.0)
    assert "**total**" in cost.render(models, prices)


def test_uplinks_by_basic_ingest_are_not_charged_as_iot_messages():
    # Given runs whose devices reported through the broker and by Basic Ingest
    prices, memory = _prices(), cost.lambda_settings(ROOT / "template.yaml")
    brokered = _results()
    ingested = _results()
    ingested["full_stack"] = {**ingested["full_stack"], "device_uplink": "basic_ingest"}
    ingested["fault_path_only"] = ingested["full_stack"]

    def messages(results: dict, model: str) -> float:
        models = {**cost.intake_model(prices, results, memory)}
        models |= cost.stack_model(prices, results, memory)
        (line,) = [i for i in models[model] if i.item.startswith("IoT Core messages")]
        return line.quantity

    # Then the broker's per-message charge stays only on what went through it: the fault
    # and the diagnostics answer skip it by Basic Ingest, the request to the device cannot
    assert messages(brokered, "new fault, fault path") == 1
    assert messages(ingested, "new fault, fault path") == 0
    assert messages(brokered, "new fault, whole stack") == 3
    assert messages(ingested, "new fault, whole stack") == 1


def test_the_cost_figures_come_from_the_saturation_rates_phase():
    assert reference_phase(_results()["full_stack"])["rate"] == 20


# ---- printed report -----------------------------------------------------------------------


def test_the_report_prints_every_table():
    text = report.render(_results())
    assert "whole stack" in text and "fault path only" in text
    assert "| 20 | 20 | 2/10 | 300/900 | 800/1500 | 600/1100 | 50 | 50% | 100.0 |" in text
    assert "saturation (p99 fault->ticket < 2 s): 20 faults/s" in text
    assert "FaultIntakeFunction" in text and "x3.00" in text
    assert "whole process (process-cpu), baseline boto3 + client 120 ms" in text
    assert "x2.00" in text
    assert "not run (a lower rate lost most of its tickets): 100" in text
