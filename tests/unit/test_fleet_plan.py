"""The fleet simulator's plan: deterministic, faithful to the scenario, validated up front."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from aftercare.models.payloads import FaultReport

from devices.scenario import (
    DeviceSpec,
    EventKind,
    FleetConfigError,
    OfflineEpisode,
    Scenario,
    Storm,
    load_scenario,
    make_devices,
    plan,
    plausible_readings,
)

CODES = {
    "CH-200": ["PSU-OVERVOLT", "FAN-STALL", "NET-DOWN"],
    "RT-10": ["NET-DOWN", "WIFI-WEAK"],
}


@pytest.fixture
def devices() -> list[DeviceSpec]:
    return make_devices(40, ["CH-200", "RT-10"], prefix="sim")


def test_devices_get_numbered_names_and_round_robin_models():
    fleet = make_devices(3, ["CH-200", "RT-10"])
    assert [(d.thing, d.model) for d in fleet] == [
        ("sim-0001", "CH-200"),
        ("sim-0002", "RT-10"),
        ("sim-0003", "CH-200"),
    ]


def test_the_same_seed_gives_the_same_plan_and_another_seed_another(devices):
    scenario = Scenario(duration_s=120, fault_rate=2, duplicate_rate=0.2, seed=7)
    assert plan(devices, scenario, CODES) == plan(devices, scenario, CODES)
    assert plan(devices, scenario, CODES) != plan(
        devices, scenario.model_copy(update={"seed": 8}), CODES
    )


def test_events_are_in_time_order_inside_the_run(devices):
    scenario = Scenario(
        duration_s=60,
        fault_rate=3,
        duplicate_rate=0.3,
        storms=[Storm(code="NET-DOWN", at_s=30, device_share=0.5)],
        offline=[OfflineEpisode(at_s=10, duration_s=20, device_share=0.25)],
    )
    events = plan(devices, scenario, CODES)
    times = [e.at_s for e in events]
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] <= 60


def test_faults_use_their_models_codes_and_carry_valid_readings(devices):
    events = plan(devices, Scenario(duration_s=300, fault_rate=2), CODES)
    faults = [e for e in events if e.kind is EventKind.FAULT]
    # roughly 40 devices * 2/min * 5 min = 400 faults
    assert 300 < len(faults) < 500
    for event in faults:
        assert event.code in CODES[devices[event.device].model]
        assert {"voltage_v", "temperature_c"} <= set(event.readings)


def test_code_weights_shape_the_mix(devices):
    scenario = Scenario(duration_s=300, fault_rate=2, code_weights={"CH-200": {"FAN-STALL": 1.0}})
    codes = {
        e.code
        for e in plan(devices, scenario, CODES)
        if e.kind is EventKind.FAULT and devices[e.device].model == "CH-200"
    }
    assert codes == {"FAN-STALL"}


def test_a_storm_hits_its_share_of_the_eligible_devices_at_once(devices):
    # Given a storm of a router-only code over half of the devices that have it
    scenario = Scenario(
        duration_s=60, fault_rate=0, storms=[Storm(code="WIFI-WEAK", at_s=20, device_share=0.5)]
    )
    # When planned
    storm = [e for e in plan(devices, scenario, CODES) if e.storm]
    # Then ten of the twenty routers raise it within the storm's half second
    assert len(storm) == 10
    assert {devices[e.device].model for e in storm} == {"RT-10"}
    assert {e.code for e in storm} == {"WIFI-WEAK"}
    assert all(20 <= e.at_s <= 20.5 for e in storm)


def test_offline_devices_raise_their_faults_between_leaving_and_returning(devices):
    scenario = Scenario(
        duration_s=60,
        fault_rate=0,
        offline=[OfflineEpisode(at_s=10, duration_s=15, device_share=0.1, faults_per_device=2)],
    )
    events = plan(devices, scenario, CODES)
    starts = [e for e in events if e.kind is EventKind.OFFLINE_START]
    assert len(starts) == 4
    for start in starts:
        mine = [e for e in events if e.device == start.device]
        kinds = [e.kind for e in mine]
        assert kinds == [
            EventKind.OFFLINE_START,
            EventKind.FAULT,
            EventKind.FAULT,
            EventKind.OFFLINE_END,
        ]
        assert all(e.offline for e in mine if e.kind is EventKind.FAULT)
        assert mine[-1].at_s == 25


def test_duplicates_repeat_an_earlier_online_fault_of_the_same_device(devices):
    scenario = Scenario(
        duration_s=120,
        fault_rate=2,
        duplicate_rate=0.5,
        offline=[OfflineEpisode(at_s=10, duration_s=30, device_share=0.5)],
    )
    events = plan(devices, scenario, CODES)
    by_seq = {e.seq: e for e in events}
    duplicates = [e for e in events if e.kind is EventKind.DUPLICATE]
    assert duplicates
    for duplicate in duplicates:
        assert duplicate.ref is not None
        original = by_seq[duplicate.ref]
        assert original.kind is EventKind.FAULT and not original.offline
        assert original.device == duplicate.device and original.at_s < duplicate.at_s


@pytest.mark.parametrize(
    ("scenario", "codes", "message"),
    [
        (Scenario(), {"CH-200": ["FAN-STALL"]}, "no fault codes for model"),
        (Scenario(code_weights={"CH-200": {"NOPE-CODE": 1.0}}), CODES, "unknown codes"),
        (Scenario(code_weights={"CH-200": {"FAN-STALL": 0.0}}), CODES, "all zero"),
        (
            Scenario(storms=[Storm(code="GHOST-CODE", at_s=1, device_share=1)]),
            CODES,
            "storm code GHOST-CODE",
        ),
    ],
)
def test_inconsistent_inputs_are_refused_before_anything_runs(devices, scenario, codes, message):
    with pytest.raises(FleetConfigError, match=message):
        plan(devices, scenario, codes)


def test_duplicate_thing_names_are_refused():
    twins = [DeviceSpec(thing="sim-1", model="CH-200")] * 2
    with pytest.raises(FleetConfigError, match="unique"):
        plan(twins, Scenario(), CODES)


def test_events_after_the_end_of_the_run_are_refused():
    with pytest.raises(ValueError, match="duration_s"):
        Scenario(duration_s=10, storms=[Storm(code="FAN-STALL", at_s=10, device_share=1)])


def test_a_scenario_loads_from_yaml(tmp_path: Path):
    path = tmp_path / "storm.yaml"
    path.write_text(
        "duration_s: 90\n"
        "fault_rate: 0.5\n"
        "duplicate_rate: 0.05\n"
        "seed: 42\n"
        "storms:\n  - {code: NET-DOWN, at_s: 45, device_share: 0.3}\n"
        "offline:\n  - {at_s: 20, duration_s: 15, device_share: 0.1, faults_per_device: 2}\n"
    )
    scenario = load_scenario(path)
    assert scenario.seed == 42 and scenario.storms[0].code == "NET-DOWN"
    assert scenario.offline[0].faults_per_device == 2


def test_a_broken_scenario_file_is_reported_with_its_name(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("duration_s: -1\nfault_rte: 2\n")
    with pytest.raises(FleetConfigError, match=r"bad\.yaml"):
        load_scenario(path)


def test_plausible_readings_follow_the_fault_and_fit_the_report_model():

    rng = random.Random(1)
    overvolt = plausible_readings("PSU-OVERVOLT", rng)
    overheat = plausible_readings("CPU-OVERHEAT", rng)
    assert overvolt["voltage_v"] > 250
    assert overheat["temperature_c"] > 80
    FaultReport(
        fault_id="fault-0001",
        code="PSU-OVERVOLT",
        occurred_at="2025-01-01T00:00:00Z",
        firmware="1.0.0",
        readings=overvolt,
    )
