"""The fleet simulator's telemetry: a week of history, live reports, and devices that degrade
the way the maintenance rules notice; turning it on leaves a seed's faults as they were."""

from __future__ import annotations

from datetime import date, timedelta

from aftercare.domain.health import trend_per_day

from devices.scenario import EventKind, Scenario, make_devices, plan

CODES = {"AC-HP": ["FAN-STALL", "TEMP-HIGH"], "EV-CH": ["PSU-OVERVOLT"]}
DEVICES = make_devices(20, ["AC-HP", "EV-CH"])


def telemetry_of(events, device):
    return [e for e in events if e.kind is EventKind.TELEMETRY and e.device == device]


def test_each_device_uploads_a_week_oldest_first_then_reports_live():
    scenario = Scenario(duration_s=60, fault_rate=0, telemetry_every_s=20, telemetry_history_days=7)
    events = plan(DEVICES, scenario, CODES)
    reports = telemetry_of(events, 0)
    history = [e for e in reports if e.age_s > 0]
    assert [e.age_s / 86_400 for e in history] == [7, 6, 5, 4, 3, 2, 1]
    assert len(reports) - len(history) == 3  # every 20 s over 60 s


def test_degrading_devices_show_a_spent_filter_and_a_rising_temperature():
    scenario = Scenario(
        duration_s=10, fault_rate=0, telemetry_history_days=7, degrading_share=0.5, seed=3
    )
    events = plan(DEVICES, scenario, CODES)
    flagged = 0
    for device, spec in enumerate(DEVICES):
        history = telemetry_of(events, device)
        temps = [
            (date(2026, 1, 8) - timedelta(days=e.age_s / 86_400), e.telemetry.temp_c)
            for e in history
            if e.telemetry is not None and e.telemetry.temp_c is not None
        ]
        slope = trend_per_day(sorted(temps))
        last = history[-1].telemetry
        assert last is not None and slope is not None
        if slope > 0.5:  # degrading: +0.8 °C/day plus noise
            flagged += 1
            if spec.model == "AC-HP":
                assert last.filter_life_pct is not None and last.filter_life_pct < 15
        if spec.model == "EV-CH":
            assert last.filter_life_pct is None and last.charge_cycles is not None
    assert flagged == 10


def test_turning_telemetry_on_keeps_the_seeds_faults():
    faults_only = Scenario(duration_s=60, fault_rate=2, seed=9)
    with_telemetry = faults_only.model_copy(
        update={"telemetry_every_s": 15.0, "telemetry_history_days": 3, "degrading_share": 0.2}
    )

    def faults(scenario):
        return [
            (e.at_s, e.device, e.code)
            for e in plan(DEVICES, scenario, CODES)
            if e.kind is not EventKind.TELEMETRY
        ]

    assert faults(with_telemetry) == faults(faults_only)
