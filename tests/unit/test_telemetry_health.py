"""Telemetry intake: a batch becomes one health write per device, a redelivered batch changes
nothing, bad telemetry is parked with its reason, and the health aggregates are right."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aftercare.domain.health import trend_per_day
from aftercare.domain.maintenance import load_maintenance_rules
from aftercare.domain.telemetry_intake import QueueMessage, take_in_telemetry
from aftercare.models.telemetry import TelemetryReport

from tests.fakes.health import Device, FakeDesk, FakeHealthStore
from tests.fakes.stores import FakeParkedStore

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RULES = load_maintenance_rules()


def message(thing: str, seq: int, payload: dict[str, Any] | bytes, **at: float) -> QueueMessage:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    received = NOW + timedelta(seconds=at.get("received_s", seq))
    envelope = {
        "payload_b64": base64.b64encode(raw).decode(),
        "thing": thing,
        "received_at": int(received.timestamp() * 1000),
        "topic": f"dt/aftercare/{thing}/telemetry",
    }
    return QueueMessage(body=json.dumps(envelope), message_id=f"m-{thing}-{seq}")


def report(seq: int, *, days_ago: float = 0, **measures: Any) -> dict[str, Any]:
    sent = NOW - timedelta(days=days_ago) + timedelta(seconds=seq)
    return {"firmware": "2.0.1", "uptime_s": 100 + seq, "sent_at": sent.isoformat(), **measures}


@pytest.fixture
def store() -> FakeHealthStore:
    return FakeHealthStore({"ac-1": Device("AC-HP", "cust-1"), "ac-2": Device("AC-HP", "cust-2")})


def take(
    store: FakeHealthStore,
    parked: FakeParkedStore,
    batch: list[QueueMessage],
    desk: FakeDesk | None = None,
):
    return take_in_telemetry(
        batch, store=store, parked=parked, rules=RULES, desk=desk or FakeDesk(), now=NOW
    )


def test_a_batch_is_one_write_per_device_with_the_latest_counters(store):
    # Given a batch with three reports of one device and two of another, out of order
    parked = FakeParkedStore()
    batch = [
        message("ac-1", 3, report(3, temp_c=40.0, filter_life_pct=30.0)),
        message("ac-1", 1, report(1, temp_c=38.0, filter_life_pct=32.0, fan_hours=10.0)),
        message("ac-2", 1, report(1, temp_c=35.0)),
        message("ac-1", 2, report(2, temp_c=39.0, filter_life_pct=31.0)),
        message("ac-2", 2, report(2, temp_c=36.0, charge_cycles=7)),
    ]
    # When the batch is taken in
    outcome = take(store, parked, batch)
    # Then each device was written once, with its newest counters and all its readings folded
    assert store.writes == 2 and outcome.applied == 5 and outcome.skipped == 0
    ac1 = store.health["ac-1"]
    assert (ac1.filter_life_pct, ac1.fan_hours, ac1.temp_c, ac1.reports) == (30.0, 10.0, 40.0, 3)
    assert ac1.last_sent_at == NOW + timedelta(seconds=3)
    assert ac1.customer_id == "cust-1" and ac1.model == "AC-HP"
    # And the moving average leans towards the newest reading (alpha 0.2, in sent_at order)
    assert ac1.temp_ewma == pytest.approx(0.2 * 40 + 0.8 * (0.2 * 39 + 0.8 * 38), abs=1e-3)
    assert ac1.daily_temp[NOW.date().isoformat()].mean == pytest.approx(39.0)
    # And silence is checked after the model's heartbeat (AC-HP: 30 minutes), on a 15-minute
    # grid so the sparse index's entry moves only every few reports
    assert ac1.next_check_at is not None
    late = ac1.next_check_at - (ac1.last_seen + timedelta(minutes=30))
    assert timedelta(0) <= late < timedelta(minutes=15) and ac1.next_check_at.minute % 15 == 0


def test_a_redelivered_batch_changes_nothing(store):
    # Given a batch already applied
    parked = FakeParkedStore()
    batch = [message("ac-1", i, report(i, temp_c=40.0 + i)) for i in range(3)]
    take(store, parked, batch)
    before = store.health["ac-1"]
    # When SQS delivers the same batch again
    outcome = take(store, parked, batch)
    # Then nothing is written and every report is counted as skipped
    assert store.writes == 1 and outcome.applied == 0 and outcome.skipped == 3
    assert store.health["ac-1"] == before and outcome.written == []


def test_a_late_report_older_than_the_watermark_is_skipped_but_newer_ones_apply(store):
    parked = FakeParkedStore()
    take(store, parked, [message("ac-1", 5, report(5, filter_life_pct=20.0))])
    # When a batch brings one report older and one newer than the applied one
    batch = [
        message("ac-1", 4, report(4, filter_life_pct=21.0)),
        message("ac-1", 6, report(6, filter_life_pct=19.0)),
    ]
    outcome = take(store, parked, batch)
    # Then only the newer one is applied
    assert (outcome.applied, outcome.skipped) == (1, 1)
    assert store.health["ac-1"].filter_life_pct == 19.0 and store.health["ac-1"].reports == 2


def test_a_lost_race_rereads_and_refolds_without_losing_reports(store):
    parked = FakeParkedStore()
    take(store, parked, [message("ac-1", 1, report(1, temp_c=30.0))])
    # Given a concurrent writer that wins the next save
    store.conflicts_left = 1
    # When a batch is taken in
    take(store, parked, [message("ac-1", 2, report(2, temp_c=32.0))])
    # Then it is written on the second attempt with both reports folded
    assert store.health["ac-1"].reports == 2 and store.writes == 2


@pytest.mark.parametrize(
    ("payload", "thing", "reason"),
    [
        (b"{not json", "ac-1", "malformed_json"),
        ({**report(1), "humidity": 3}, "ac-1", "unknown_field"),
        ({**report(1), "filter_life_pct": 140}, "ac-1", "schema_violation"),
        ({**report(1), "thing": "ac-2"}, "ac-1", "thing_mismatch"),
        (report(1, days_ago=31), "ac-1", "stale_report"),
        (report(1, days_ago=-2), "ac-1", "future_timestamp"),
        (report(1), "nobody-9", "unknown_device"),
        (report(1), "", "invalid_envelope"),
    ],
)
def test_bad_telemetry_is_parked_with_its_reason_and_counted(store, payload, thing, reason):
    # Given a batch with one good report and one bad one
    parked = FakeParkedStore()
    batch = [message("ac-2", 1, report(1, temp_c=30.0)), message(thing, 2, payload)]
    # When it is taken in
    outcome = take(store, parked, batch)
    # Then the bad one is parked under the telemetry source with its reason, and counted
    (item,) = parked.writes
    assert (item.source, item.reason, item.message_id) == ("telemetry", reason, f"m-{thing}-2")
    assert outcome.rejected == {reason: 1}
    # And the good one is applied all the same
    assert store.health["ac-2"].reports == 1


def test_an_envelope_that_is_not_one_is_parked():
    parked = FakeParkedStore()
    outcome = take(FakeHealthStore({}), parked, [QueueMessage(body="[]", message_id="m-x")])
    assert outcome.rejected == {"invalid_envelope": 1}
    assert parked.writes[0].source == "telemetry"


def test_daily_means_keep_a_week_and_show_the_trend(store):
    # Given ten days of one report a day, 0.5 °C warmer each day
    parked = FakeParkedStore()
    batch = [
        message("ac-1", i, report(i, days_ago=9 - i, temp_c=30.0 + 0.5 * i)) for i in range(10)
    ]
    take(store, parked, batch)
    health = store.health["ac-1"]
    # Then only the last 7 days are kept, and their slope is 0.5 °C/day
    assert len(health.daily_temp) == 7
    assert trend_per_day(health.daily_means()) == pytest.approx(0.5)


def test_the_wire_model_refuses_unknown_fields_and_keeps_measures_optional():
    minimal = TelemetryReport.model_validate(report(0))
    assert minimal.temp_c is None and minimal.error_counters == {}
    with pytest.raises(ValueError, match="extra"):
        TelemetryReport.model_validate({**report(0), "extra_field": 1})
