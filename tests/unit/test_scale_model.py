"""The scale model (`make scale`): its arithmetic on a tiny fleet, the conflict model, the
verdict solver, the limits file, the template reader and the cost of the hour."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest
from aftercare.domain.incidents import load_incident_policy
from aftercare.domain.intake import MAX_LOCK_RETRIES

from infra.bench.cost import Prices, lambda_settings, stack_model
from infra.scale.__main__ import main as scale_main
from infra.scale.cost import hour_cost, unit_costs, usd_per_event
from infra.scale.counter import StormCounter
from infra.scale.flow import Cohort, RetryQueue
from infra.scale.limits import load_limits
from infra.scale.measured import Measured, load_results, measured_from
from infra.scale.model import Inputs, conflict_probability, record_conflict, simulate
from infra.scale.scenario import INCIDENT, Scenario
from infra.scale.settings import read_settings
from infra.scale.verdict import Solver, checks, solve

ROOT = Path(__file__).resolve().parents[2]


def hand_measured() -> Measured:
    return Measured(
        busy_s_per_fault={
            "FaultIntakeFunction": 0.1,
            "AutoDiagnoseFunction": 0.2,
            "NotifierFunction": 0.05,
            "DispatcherFunction": 0.0,
            "DiagnosticsResultFunction": 0.1,
        },
        ticket_table_wru_per_fault=20.0,
        storm_counter_wcu_per_fault=1.0,
        incident_pointer_rru_per_fault=0.5,
        taken_at="by hand",
        note="",
    )


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return Inputs(read_settings(), hand_measured(), load_limits())


def test_a_tiny_fleet_matches_the_arithmetic_by_hand(inputs: Inputs) -> None:
    # Given 864,000 devices at 0.1 faults per device-day (1 fault/s), telemetry every 864 s
    # (1,000/s), no storm
    scenario = Scenario(
        devices=864_000,
        minutes=3,
        fault_rate_per_device_day=0.1,
        storm_devices=0,
        telemetry_every_s=864,
    )
    # When the model runs
    result = simulate(scenario, inputs)
    row = result.rows[-1]
    # Then each minute is 1 fault/s: IoT in = 1 fault + 1,000 telemetry + 1 diagnostics answer
    assert row["iot_in_per_s"] == pytest.approx(1002)
    assert row["iot_out_per_s"] == pytest.approx(1)
    # and every IoT message in is one rule action (fault, telemetry and diagnostics rules)
    assert row["rule_actions_per_s"] == pytest.approx(1002)
    # and concurrency is rate x measured Lambda seconds per fault
    assert row["intake_conc"] == pytest.approx(0.1)
    assert row["autodiagnose_conc"] == pytest.approx(0.2)
    assert row["tickets_table_wru"] == pytest.approx(20)
    assert row["email_per_s"] == pytest.approx(0.6)  # the stated channel mix
    # and nothing waits, conflicts or is dead-lettered
    assert row["faultq_backlog"] == 0 and row["conflict_p"] == 0
    assert result.totals["tickets"] == pytest.approx(180)
    assert result.totals["dead_lettered"] == 0


def test_a_storm_makes_one_stock_item_hot_and_not_the_sharded_or_incident_designs(
    inputs: Inputs,
) -> None:
    # Given a 9,000-device storm in three minutes (50 reports/s on one stock item)
    storm = {
        "devices": 1_000_000,
        "storm_devices": 9_000,
        "storm_minutes": 3,
        "storm_start_minute": 0,
        "minutes": 20,
    }
    one = simulate(Scenario(**storm, stock_shards=1), inputs)
    sharded = simulate(Scenario(**storm, stock_shards=8), inputs)
    incident = simulate(Scenario(**storm, design=INCIDENT), inputs)
    # Then on one item the attempts conflict (in-process retries raise the attempt rate: the
    # fixed point), records fail all their attempts, and each commit is a transactional write
    hold_s = inputs.limits.assumptions["transaction_hold_ms"] / 1000
    p, fail = record_conflict(50, hold_s)
    tries = sum(p**i for i in range(MAX_LOCK_RETRIES))
    assert p == pytest.approx(conflict_probability(50 * tries, hold_s))
    assert fail == pytest.approx(p**MAX_LOCK_RETRIES)
    assert one.rows[0]["conflict_p"] == pytest.approx(p)
    assert one.rows[0]["record_conflict_p"] == pytest.approx(fail)
    assert one.rows[0]["stock_wcu"] == pytest.approx(50 * (1 - fail) * 2)
    assert one.totals["retries"] >= 3000 * fail  # the first receive's failures, and later ones'
    # and over 8 shards each key takes an eighth, and no record fails all its attempts
    p8, fail8 = record_conflict(50 / 8, hold_s)
    assert sharded.rows[0]["conflict_p"] == pytest.approx(p8) and fail8 < 1e-6
    assert sharded.rows[0]["stock_key_wcu_per_min"] == pytest.approx(50 / 8 * (1 - fail8) * 120)
    assert sharded.totals["dead_lettered"] == 0 and sharded.totals["retries"] < 1
    # and the incident design serialises stock writes per key: no conflict, no redelivery
    assert max(r["conflict_p"] for r in incident.rows) == 0
    assert incident.totals["retries"] == 0 and incident.totals["dead_lettered"] == 0
    # and, open after the first minute, samples the children's diagnostics
    assert incident.detected_minute == 0
    assert incident.totals["diagnostics"] < one.totals["diagnostics"]


def test_the_storm_counter_is_a_hot_key_while_no_incident_opens(inputs: Inputs) -> None:
    # Given a 9,000-device storm in three minutes (50 new tickets/s) on today's design (no
    # incident opens: every ticket is counted), stock on 8 shards (no ticket lost to conflicts)
    storm = {"devices": 1_000_000, "storm_devices": 9_000, "storm_minutes": 3}
    today = simulate(Scenario(**storm, storm_start_minute=0, minutes=4, stock_shards=8), inputs)
    first = today.rows[0]
    # Then each of the 8 counter shards takes 50 / 8 updates/s; by the minute's end a shard
    # holds 375 ticket ids (14 bytes each over 100): 5,350 bytes, 6 WCU an update
    assert first["counter_item_kb"] == pytest.approx(5350 / 1024, rel=1e-3)
    assert first["counter_wcu"] == pytest.approx(50 / 8 * 6, rel=1e-3)
    # and every counted ticket reads each shard of both windows: 2 RCU (4 KB each) a read
    assert first["counter_rcu"] == pytest.approx(50 * 2, rel=1e-3)
    # and every attempt of a storm report (in-process retries too) reads the code's ACTIVE
    # pointer (measured: 0.5 RRU) in its batch read
    tries = sum(first["conflict_p"] ** i for i in range(MAX_LOCK_RETRIES))
    assert first["pointer_rcu"] == pytest.approx(50 * tries * 0.5, rel=1e-3)
    # and every new ticket is one counter update; the hour's reads (3,000 readers a minute x 8
    # shards x this window's 2, 3, 4 RCU + the empty previous window's 1) are priced
    assert today.totals["storm_counter_updates"] == pytest.approx(today.totals["tickets"])
    assert today.totals["storm_counter_read_units"] == pytest.approx(
        3000 * 8 * (3 + 4 + 5), rel=1e-3
    )


def test_the_incident_design_stops_counting_and_shards_the_incident_statistics(
    inputs: Inputs,
) -> None:
    # Given the same storm on the incident design (open from minute 0)
    storm = {"devices": 1_000_000, "storm_devices": 9_000, "storm_minutes": 3}
    incident = simulate(Scenario(**storm, storm_start_minute=0, minutes=4, design=INCIDENT), inputs)
    # Then the storm's children update no storm counter (only the baseline's new tickets do)
    assert incident.detected_minute == 0
    assert incident.peak("counter_wcu") == 0 and incident.peak("counter_rcu") == 0
    baseline = incident.totals["tickets"] - 9_000
    assert incident.totals["storm_counter_updates"] == pytest.approx(baseline, abs=1)
    # and each child adds to one of the 8 statistics shards: 50 / 8 WCU/s a key
    assert incident.rows[0]["incident_counter_wcu"] == pytest.approx(50 / 8)


def test_the_counter_settings_and_units_come_from_the_policy_and_the_bench() -> None:
    # Given the shipped incidents.yaml and the committed bench results
    counter = StormCounter.shipped(load_incident_policy())
    measured = measured_from(load_results())
    # Then the model runs on the policy's shards, window and precheck
    detection = load_incident_policy().detection
    assert (counter.shards, counter.window_minutes, counter.precheck) == (
        detection.shards,
        detection.window_minutes,
        detection.precheck,
    )
    assert StormCounter.shipped(load_incident_policy(), 16).shards == 16
    # and the counter's update is measured: FaultIntake's writes to the incidents table
    assert measured.storm_counter_wcu_per_fault >= 1
    # and a capacity run without them is refused rather than read as zero
    stale = load_results()
    intake = stale["capacity_units"]["steps"]["new"]["FaultIntakeFunction"]
    intake["write_units_by_table"].pop("aftercare-incidents-local")
    with pytest.raises(ValueError, match="make bench"):
        measured_from(stale)


def test_conflict_probability_is_a_one_server_loss_system() -> None:
    # Given 40 attempts/s on one item and a 25 ms hold: rho = 1
    # Then half the attempts meet a transaction in progress
    assert conflict_probability(40, 0.025) == pytest.approx(0.5)
    assert conflict_probability(0, 0.025) == 0


def test_a_record_that_keeps_conflicting_is_dead_lettered_on_its_last_receive() -> None:
    # Given a queue with a 60 s visibility timeout and two receives before the DLQ
    queue = RetryQueue(visibility_timeout_s=60, max_receive_count=2)

    def always(_: float) -> float:
        return 1.0

    def none(_: float) -> float:
        return 0.0

    # When a hot record fails on each receive
    first = queue.step(0, [Cohort(0, 0, 10, True)], math.inf, always, none)
    second = queue.step(1, [], math.inf, always, none)
    # Then it is back after the timeout, and dead-lettered on the second receive
    assert first.failed == 10 and first.dead_lettered == 0 and first.in_flight == 10
    assert second.received == 10 and second.dead_lettered == 10
    assert second.oldest_age_s == 0


def test_the_solver_finds_where_a_peak_meets_its_limit() -> None:
    # Given a peak that grows linearly with the fleet
    def peak(devices: float) -> float:
        return devices / 1000

    # Then the limit is met at limit x 1,000 devices
    assert solve(peak, 50, 1, 1e9) == pytest.approx(50_000, rel=1e-6)
    # and never within the range, or already at its low end
    assert solve(peak, 50, 1, 1_000) is None
    assert solve(peak, 50, 100_000, 1e9) == 100_000


def test_limits_carry_their_documented_name_value_and_page() -> None:
    limits = load_limits()
    inbound = limits["iot_inbound_publishes"]
    assert inbound.value == 20_000
    assert "Inbound publish requests per second" in inbound.name
    assert limits["dynamodb_partition_writes"].value == 1000
    assert limits["dynamodb_partition_reads"].value == 3000
    for limit in limits.limits.values():
        assert limit.name and limit.unit
        assert limit.source.startswith("https://docs.aws.amazon.com/")
    assert limits.with_value("ses_send_rate", 14)["ses_send_rate"].value == 14


def test_template_settings_are_read_from_the_template(tmp_path: Path) -> None:
    # Given a template whose consumer takes its concurrency from a parameter's default
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(
            """
            Transform: AWS::Serverless-2016-10-31
            Parameters:
              MaxConc:
                Type: Number
                Default: 7
              Reserve:
                Type: String
                Default: ""
            Conditions:
              Reserving: !Not [!Equals [!Ref Reserve, ""]]
            Resources:
              Q:
                Type: AWS::SQS::Queue
                Properties:
                  VisibilityTimeout: 90
                  RedrivePolicy: {deadLetterTargetArn: x, maxReceiveCount: 4}
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn/
                  Handler: h.handler
                  Runtime: python3.12
                  MemorySize: 256
                  ReservedConcurrentExecutions: !If [Reserving, !Ref Reserve, !Ref AWS::NoValue]
                  Events:
                    Jobs:
                      Type: SQS
                      Properties:
                        Queue: !GetAtt Q.Arn
                        BatchSize: 10
                        MaximumBatchingWindowInSeconds: 3
                        ScalingConfig: {MaximumConcurrency: !Ref MaxConc}
            """
        )
    )
    # When it is read
    settings = read_settings(path)
    # Then the parameter's default, the batching and the queue's redrive are what it says
    source = settings.source("Fn", "Q")
    assert (source.batch_size, source.window_s, source.max_concurrency) == (10, 3, 7)
    assert settings.functions["Fn"].reserved_concurrency is None
    assert settings.functions["Fn"].memory_mb == 256
    assert settings.queues["Q"].visibility_timeout_s == 90
    assert settings.queues["Q"].max_receive_count == 4


def test_the_real_template_fault_queue_settings() -> None:
    settings = read_settings()
    source = settings.source("FaultIntakeFunction", "FaultQueue")
    assert source.batch_size == 10 and source.window_s == 1
    assert settings.queues["FaultQueue"].max_receive_count == 5


def test_the_hours_ticket_cost_is_the_cost_models_per_fault_figure_times_the_faults() -> None:
    # Given the committed measurements and prices
    results = load_results()
    prices = Prices(json.loads((ROOT / "bench" / "prices.json").read_text()))
    template = ROOT / "template.yaml"
    units = unit_costs(results, prices, template)
    whole_stack = stack_model(prices, results, lambda_settings(template))["new fault, whole stack"]
    per_fault = usd_per_event(whole_stack)
    # When an hour has 12,345 tickets, each with its diagnostic (today's design)
    totals = {
        "tickets": 12_345.0,
        "diagnostics": 12_345.0,
        "retries": 0.0,
        "dead_lettered": 0.0,
        "telemetry": 0.0,
    }
    cost = hour_cost(totals, units)
    # Then tickets + diagnostics cost make cost's whole-stack figure x the tickets
    assert cost["tickets (fault path)"] + cost["diagnostic round trips"] == pytest.approx(
        per_fault * 12_345
    )
    assert cost["total"] == pytest.approx(per_fault * 12_345)


def test_telemetry_by_basic_ingest_pays_its_rule_and_action_but_no_message() -> None:
    # Given the committed prices, and measurements whose devices used the broker or not
    prices = Prices(json.loads((ROOT / "bench" / "prices.json").read_text()))
    template = ROOT / "template.yaml"
    brokered = load_results()
    brokered["full_stack"] = {**brokered["full_stack"], "device_uplink": "broker"}
    ingested = {
        **brokered,
        "full_stack": {**brokered["full_stack"], "device_uplink": "basic_ingest"},
    }
    rule = prices.per_unit("iot_rule_triggered") + prices.per_unit("iot_rule_action")
    # Then a telemetry report costs its rule and action, plus the message only via the broker
    assert unit_costs(ingested, prices, template).telemetry_message == pytest.approx(rule)
    assert unit_costs(brokered, prices, template).telemetry_message == pytest.approx(
        rule + prices.per_unit("iot_message")
    )


def test_the_verdict_solves_the_fleet_size_where_telemetry_meets_the_iot_quota(
    inputs: Inputs,
) -> None:
    # Given 1,000,000 devices sending telemetry every 300 s and no storm
    scenario = Scenario(devices=1_000_000, minutes=2, storm_devices=0, telemetry_every_s=300)
    inbound = next(c for c in checks(inputs.limits, inputs) if c.metric == "iot_in_per_s")
    # When the inbound-publish limit is judged
    verdict = Solver(scenario, inputs).verdict(inbound)
    # Then it fits at ~1/6 of the quota, and the quota is met at 20,000 x 300 devices
    assert verdict.fits and verdict.share == pytest.approx(3334 / 20_000, rel=1e-3)
    assert verdict.devices_at_limit == pytest.approx(6_000_000, rel=1e-3)
    assert verdict.text.startswith("fits (peak 16.7% of limit); bottleneck at ~6,000,000")


def test_a_storm_that_alone_exceeds_a_limit_is_named_with_the_storm_that_fits(
    inputs: Inputs,
) -> None:
    # Given a 50,000-device storm on the SES sandbox rate (1 email/s, 60 % of customers)
    scenario = Scenario(devices=1_000_000, minutes=20, storm_start_minute=1)
    email = next(c for c in checks(inputs.limits, inputs) if c.metric == "email_per_s")
    verdict = Solver(scenario, inputs).verdict(email)
    # Then the storm alone is the bottleneck; ~1,000 devices in 10 min (1 email/s) would fit
    assert not verdict.fits and verdict.devices_at_limit is None
    assert verdict.storm_at_limit == pytest.approx(1000, rel=0.05)
    assert "the storm alone exceeds it" in verdict.text


def test_the_incident_design_paces_known_issue_messages_within_the_quota(
    inputs: Inputs,
) -> None:
    # Given the storm on the incident design and a granted SES rate of 10 emails/s
    limits = inputs.limits.with_value("ses_send_rate", 10)
    granted = Inputs(inputs.settings, inputs.measured, limits)
    result = simulate(Scenario(devices=1_000_000, design=INCIDENT), granted)
    # Then emails stay within 90 % of the rate plus the other faults' own messages
    assert result.peak("email_per_s") <= 9 + 0.01
    # and whoever is not told within the hour is still waiting, not lost
    told = sum(v for k, v in result.totals.items() if k.endswith("_messages"))
    assert told + result.totals["messages_waiting_at_end"] == pytest.approx(
        result.totals["tickets"] - 50_000 * 0.01, rel=1e-3
    )


def test_the_command_prints_the_whole_result_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    # When `python -m infra.scale --json` runs a short hour
    assert scale_main(["--devices", "100000", "--minutes", "8", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    # Then it holds one row per minute, a verdict per limit with its documented name, the cost
    assert [row["minute"] for row in document["minutes"]] == list(range(8))
    names = {v["limit"]["name"] for v in document["verdicts"]}
    assert "AWS IoT Core: Inbound publish requests per second per account" in names
    assert all(v["verdict"].startswith(("fits", "bottleneck")) for v in document["verdicts"])
    assert document["cost_usd"]["total"] > 0
    assert document["meta"]["measured_at"] == load_results()["meta"]["taken_at"]


def test_the_table_has_one_row_per_minute(capsys: pytest.CaptureFixture[str]) -> None:
    assert scale_main(["--devices", "100000", "--minutes", "4"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split()[:2] == ["min", "fault/s"] and len(table) == 1 + 4
    assert "verdicts:" in out and "cost of the hour" in out
