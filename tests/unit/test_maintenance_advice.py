"""Maintenance rules as data: which advice or preventive ticket the health fires, at most once
per device, rule and period, priced from the parts list."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aftercare.domain.maintenance import load_maintenance_rules, parse_rules, period_of
from aftercare.domain.rules import load_catalog
from aftercare.domain.silence import sweep_silence
from aftercare.domain.telemetry_intake import QueueMessage, take_in_telemetry

from infra.cli_health import health_row
from tests.fakes.health import Device, FakeDesk, FakeHealthStore
from tests.fakes.stores import FakeParkedStore

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RULES = load_maintenance_rules()


def message(thing: str, seq: int, sent: datetime, **measures: Any) -> QueueMessage:
    payload = {"firmware": "2.0.1", "uptime_s": seq, "sent_at": sent.isoformat(), **measures}
    envelope = {
        "payload_b64": base64.b64encode(json.dumps(payload).encode()).decode(),
        "thing": thing,
        "received_at": int(max(sent, NOW).timestamp() * 1000),
        "topic": f"dt/aftercare/{thing}/telemetry",
    }
    return QueueMessage(body=json.dumps(envelope), message_id=f"m-{thing}-{seq}")


class Fleet:
    def __init__(self) -> None:
        self.store = FakeHealthStore(
            {"ac-1": Device("AC-HP", "cust-1"), "ev-1": Device("EV-CH", "cust-2")}
        )
        self.desk = FakeDesk()
        self.seq = 0

    def send(self, thing: str, *, at: datetime = NOW, now: datetime = NOW, **measures: Any):
        self.seq += 1
        batch = [message(thing, self.seq, at + timedelta(seconds=self.seq), **measures)]
        return take_in_telemetry(
            batch,
            store=self.store,
            parked=FakeParkedStore(),
            rules=RULES,
            desk=self.desk,
            now=now,
        )


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


def test_a_low_filter_is_advised_once_with_the_parts_price(fleet):
    # Given an AC-HP whose filter life has dropped under 15 %
    outcome = fleet.send("ac-1", filter_life_pct=11.0)
    # Then its owner is advised to change the filter, with the filter's price from parts.yaml
    (acted,) = outcome.acted
    assert (acted.rule_id, acted.action, acted.result) == ("filter-change", "advise", "sent")
    (facts,) = fleet.desk.advice.values()
    assert facts.customer_id == "cust-1" and facts.thing == "ac-1"
    assert "filter life 11 %" in facts.title_en and "FILTER-ACHP" in facts.title_en
    assert "18.50 EUR" in facts.title_en and "18.50 EUR" in facts.title_zh
    # And the health item remembers when (what the owner's device list shows as issued_at)
    assert set(fleet.store.health["ac-1"].advised_at) == {"filter-change"}
    # When the device keeps reporting a low filter in the same period
    again = fleet.send("ac-1", filter_life_pct=10.0)
    # Then nothing more is sent, and the desk is not even asked (the health remembers)
    assert again.acted == [] and fleet.desk.calls == 1


def test_the_next_period_advises_again(fleet):
    fleet.send("ac-1", filter_life_pct=11.0)
    # When the filter is still low 31 days later (the rule's period is 30 days)
    later = NOW + timedelta(days=31)
    outcome = fleet.send("ac-1", at=later, now=later, filter_life_pct=9.0)
    # Then a second advice goes out, under the new period's id
    assert [a.rule_id for a in outcome.acted] == ["filter-change"]
    assert len(fleet.desk.advice) == 2


def test_a_healthy_filter_and_a_young_fan_fire_nothing(fleet):
    outcome = fleet.send("ac-1", filter_life_pct=60.0, fan_hours=1_000.0, temp_c=38.0)
    assert outcome.acted == [] and fleet.desk.calls == 0


def test_a_fan_past_its_rated_life_gets_preventive_replacement_advice(fleet):
    outcome = fleet.send("ac-1", fan_hours=41_000.0)
    assert [a.rule_id for a in outcome.acted] == ["fan-preventive"]
    (facts,) = fleet.desk.advice.values()
    assert "FAN-80MM" in facts.title_en and "12.50 EUR" in facts.title_en


def test_a_week_of_rising_temperature_opens_one_preventive_ticket(fleet):
    # Given an EV charger whose daily temperature rose 0.8 °C a day for a week
    for day in range(7):
        at = NOW - timedelta(days=6 - day)
        outcome = fleet.send("ev-1", at=at, temp_c=34.0 + 0.8 * day)
    # Then exactly one preventive ticket was asked of intake, with the catalog's code, a fault
    # id fixed by rule and period, and the daily means as evidence
    (report,) = fleet.desk.tickets.values()
    assert report.code == "PREVENTIVE-THERMAL"
    assert period_of(NOW.date(), 7) == "2026-12-03/7d"
    assert report.fault_id == "pm_thermal-trend_20261203"
    assert report.readings["temp_ewma_c"] > 34.0 and outcome.acted == []
    # And further rising reports in the same period add nothing
    fleet.send("ev-1", temp_c=40.0)
    assert len(fleet.desk.tickets) == 1


def test_a_flat_temperature_opens_no_ticket(fleet):
    for day in range(7):
        fleet.send("ev-1", at=NOW - timedelta(days=6 - day), temp_c=34.0 + (day % 2) * 0.3)
    assert fleet.desk.tickets == {}


def test_the_preventive_code_is_in_the_catalog_at_low_severity_and_never_simulated():
    entry = load_catalog().lookup("PREVENTIVE-THERMAL")
    assert entry is not None and entry.severity == "info" and entry.preventive
    assert "PREVENTIVE-THERMAL" not in load_catalog().codes_for_model("AC-HP")


def test_a_rule_naming_an_unknown_part_fails_when_loaded():
    data = {
        "version": 1,
        "ewma_alpha": 0.2,
        "history_days": 7,
        "default_heartbeat_minutes": 60,
        "offline": {"title_en": "offline", "title_zh": "离线"},
        "models": {
            "AC-HP": {
                "heartbeat_minutes": 30,
                "rules": [
                    {
                        "id": "filter-change",
                        "kind": "filter_life_below",
                        "threshold_pct": 15,
                        "part": "NO-SUCH-PART",
                        "action": "advise",
                        "period_days": 30,
                    }
                ],
            }
        },
    }
    parts = {"currency": "EUR", "parts": {}}
    with pytest.raises(ValueError, match="unknown part NO-SUCH-PART"):
        parse_rules(data, parts)


def test_periods_are_fixed_windows_counted_from_1970():
    # 2026-12-06 is day 20,793; 30-day windows start on multiples of 30 (day 20,790)
    assert period_of(NOW.date(), 30) == "2026-12-03/30d"
    assert period_of(NOW.date() + timedelta(days=26), 30) == "2026-12-03/30d"
    assert period_of(NOW.date() + timedelta(days=27), 30) == "2027-01-02/30d"


class SilenceIndex(FakeHealthStore):
    def due_checks(self, now: datetime, limit: int) -> list[str]:
        due = [
            h.thing
            for h in self.health.values()
            if h.offline_since is None and h.next_check_at and h.next_check_at <= now
        ]
        return sorted(due)[:limit]


def test_a_silent_device_gets_one_offline_check_per_silence():
    # Given an AC-HP (heartbeat 30 min) that last reported at NOW
    index = SilenceIndex({"ac-1": Device("AC-HP", "cust-1")})
    desk = FakeDesk()
    batch = [message("ac-1", 1, NOW, temp_c=38.0)]
    take_in_telemetry(batch, store=index, parked=FakeParkedStore(), rules=RULES, desk=desk, now=NOW)
    # When sweeps run before and after its heartbeat lapses
    assert sweep_silence(index, desk, RULES, NOW + timedelta(minutes=29)) == []
    (silent,) = sweep_silence(index, desk, RULES, NOW + timedelta(minutes=31))
    again = sweep_silence(index, desk, RULES, NOW + timedelta(minutes=50))
    # Then its owner got one offline check naming when it was last seen, and no second one
    assert silent.result == "sent" and again == []
    (facts,) = desk.advice.values()
    assert facts.fault_code == "ADVICE-DEVICE-OFFLINE" and "not reported since" in facts.title_en
    # And when it reports again it is back under watch for the next silence
    later = NOW + timedelta(hours=2)
    take_in_telemetry(
        [message("ac-1", 2, later, temp_c=38.0)],
        store=index,
        parked=FakeParkedStore(),
        rules=RULES,
        desk=desk,
        now=later,
    )
    assert index.health["ac-1"].offline_since is None
    (second,) = sweep_silence(index, desk, RULES, later + timedelta(minutes=31))
    assert second.result == "sent" and len(desk.advice) == 2


def test_the_cli_row_shows_health_trend_and_what_fires_now(fleet):
    # Given an AC-HP with a week of rising temperature and a low filter
    for day in range(7):
        fleet.send("ac-1", at=NOW - timedelta(days=6 - day), temp_c=38.0 + 0.5 * day)
    fleet.send("ac-1", filter_life_pct=12.0)
    view = fleet.store.read(["ac-1"])["ac-1"]
    # When `aftercare devices health ac-1 --json` builds its object
    row = health_row(view, RULES, NOW + timedelta(minutes=5))
    # Then it has the counters, the daily means and their trend, and the rules firing now
    assert row["thing"] == "ac-1" and row["filter_life_pct"] == 12.0 and row["online"]
    assert row["temp_trend_c_per_day"] == pytest.approx(0.5) and len(row["daily_temp_c"]) == 7
    assert {f["rule"] for f in row["firing"]} == {"filter-change", "thermal-trend"}
    assert set(row["advised"]) == {"filter-change", "thermal-trend"}
    # And a device that never reported shows as such
    empty = health_row(fleet.store.read(["ev-1"])["ev-1"], RULES, NOW)
    assert (empty["reports"], empty["last_seen"], empty["online"]) == (0, None, False)


def test_a_deployments_heartbeat_cap_shortens_every_models_heartbeat_but_never_lengthens() -> None:
    from datetime import timedelta

    from aftercare.domain.maintenance import load_maintenance_rules

    rules = load_maintenance_rules()
    # Given the shipped rules (IC-300: 15 minutes, AC-HP: 30)
    assert rules.heartbeat("IC-300") == timedelta(minutes=15)
    # When a test stack caps heartbeats at 4 seconds (template parameter HeartbeatCapSeconds)
    capped = rules.with_heartbeat_cap(4)
    # Then every model's silence is checked after 4 s, and the fold uses it
    assert capped.heartbeat("IC-300") == capped.heartbeat("AC-HP") == timedelta(seconds=4)
    assert capped.fold_policy("AC-HP").heartbeat == timedelta(seconds=4)
    # And 0 (the default) or a cap above a model's own keeps the model's
    assert rules.with_heartbeat_cap(0).heartbeat("AC-HP") == timedelta(minutes=30)
    assert rules.with_heartbeat_cap(3600).heartbeat("AC-HP") == timedelta(minutes=30)
