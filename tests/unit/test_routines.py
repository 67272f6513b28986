"""Diagnostics routines on the simulated device state, and the request -> result step."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from aftercare.models.payloads import DiagnosticsRequest, DiagnosticStatus, FaultReport, Severity

from devices.routines import (
    ROUTINES,
    RoutineOutcome,
    log_excerpt,
    reset_component,
    respond,
    self_test,
    sensor_snapshot,
)
from devices.state import DeviceState

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def fault(code: str, fault_id: str, **readings: float) -> FaultReport:
    return FaultReport(
        fault_id=fault_id,
        code=code,
        severity=Severity.MAJOR,
        occurred_at=NOW - timedelta(minutes=5),
        firmware="2.1.0",
        readings=readings,
        thing="dev-1",
    )


@pytest.fixture
def state() -> DeviceState:
    return DeviceState(
        thing="dev-1",
        firmware="2.1.0",
        readings={"temperature_c": 41.5},
        remote_fixable_codes=frozenset({"PSU-OVERVOLT"}),
    )


def request(routine: str, expires_in: timedelta = timedelta(minutes=5), **params) -> bytes:
    return (
        DiagnosticsRequest(
            request_id="req-0001",
            routine=routine,
            params=params,
            expires_at=NOW + expires_in,
        )
        .model_dump_json()
        .encode()
    )


def test_the_registry_offers_the_four_routines():
    assert set(ROUTINES) == {"self_test", "sensor_snapshot", "log_excerpt", "reset_component"}


def test_self_test_passes_on_a_healthy_device(state: DeviceState):
    # Given a device without active faults
    # When it runs its self test
    outcome = self_test(state, {})
    # Then every component checks ok
    assert outcome == RoutineOutcome(
        DiagnosticStatus.PASSED,
        {
            "checks": {
                "mainboard": "ok",
                "network": "ok",
                "psu": "ok",
                "storage": "ok",
                "thermal": "ok",
            },
            "active_faults": [],
            "firmware": "2.1.0",
        },
    )


def test_self_test_fails_and_names_the_faulty_component(state: DeviceState):
    # Given an active fan fault (a component outside the base set)
    state.record_fault(fault("FAN-STALL", "fault-0001"))
    # When the self test runs
    outcome = self_test(state, {})
    # Then it fails, marks the fan as faulty and lists the fault
    assert outcome.status is DiagnosticStatus.FAILED
    assert outcome.findings["checks"]["fan"] == "fault"
    assert outcome.findings["checks"]["psu"] == "ok"
    assert outcome.findings["active_faults"] == ["FAN-STALL"]
    assert outcome.remedied is False


def test_sensor_snapshot_reports_current_readings_including_fault_readings(state: DeviceState):
    # Given a fault that carried a voltage reading
    state.record_fault(fault("PSU-OVERVOLT", "fault-0002", voltage_v=262.0))
    # When all sensors are read
    outcome = sensor_snapshot(state, {})
    # Then the snapshot holds the latest value of every reading, sorted by name
    assert outcome == RoutineOutcome(
        DiagnosticStatus.PASSED,
        {"readings": {"temperature_c": 41.5, "voltage_v": 262.0}, "missing": []},
    )


def test_sensor_snapshot_fails_for_a_sensor_that_does_not_report(state: DeviceState):
    # Given a request for one known and one unknown sensor
    # When the snapshot runs
    outcome = sensor_snapshot(state, {"sensors": ["temperature_c", "humidity_pct"]})
    # Then it reports the known one and fails on the missing one
    assert outcome.status is DiagnosticStatus.FAILED
    assert outcome.findings == {"readings": {"temperature_c": 41.5}, "missing": ["humidity_pct"]}


def test_log_excerpt_returns_the_newest_lines(state: DeviceState):
    # Given two faults in the device log
    state.record_fault(fault("FAN-STALL", "fault-0003"))
    state.record_fault(fault("PSU-OVERVOLT", "fault-0004"))
    # When the newest line is asked for
    outcome = log_excerpt(state, {"lines": 1})
    # Then exactly that line comes back, with the log's size
    assert outcome == RoutineOutcome(
        DiagnosticStatus.PASSED,
        {
            "lines": ["2025-03-01T11:55:00+00:00 FAULT PSU-OVERVOLT major id=fault-0004"],
            "total_lines": 2,
        },
    )


def test_log_excerpt_rejects_a_nonsense_line_count(state: DeviceState):
    # Given a request with a line count that is not a positive integer
    # When the request is answered
    result = respond(state, request("log_excerpt", lines="all"), NOW)
    # Then the result is an error saying what was wrong
    assert result is not None
    assert result.status is DiagnosticStatus.ERROR
    assert "params.lines" in result.findings["error"]


def test_reset_component_remedies_a_remotely_fixable_fault(state: DeviceState):
    # Given an active fault the device can fix itself
    state.record_fault(fault("PSU-OVERVOLT", "fault-0005"))
    # When the engineer resets the component named by the fault code
    outcome = reset_component(state, {"code": "PSU-OVERVOLT"})
    # Then the fault is cleared and the outcome says remedied
    assert outcome == RoutineOutcome(
        DiagnosticStatus.PASSED,
        {"component": "psu", "cleared": ["PSU-OVERVOLT"], "remaining": []},
        remedied=True,
    )
    assert state.active_faults == {}
    assert self_test(state, {}).status is DiagnosticStatus.PASSED


def test_reset_component_cannot_remedy_a_hardware_fault(state: DeviceState):
    # Given an active fault that is not remotely fixable
    state.record_fault(fault("PSU-CAPACITOR", "fault-0006"))
    # When the component is reset
    outcome = reset_component(state, {"component": "psu"})
    # Then the fault stays, the routine fails and nothing is remedied
    assert outcome == RoutineOutcome(
        DiagnosticStatus.FAILED,
        {"component": "psu", "cleared": [], "remaining": ["PSU-CAPACITOR"]},
        remedied=False,
    )
    assert set(state.active_faults) == {"PSU-CAPACITOR"}


def test_reset_component_on_a_healthy_component_changes_nothing(state: DeviceState):
    # Given no active fault on the fan
    # When the fan is reset
    outcome = reset_component(state, {"component": "fan"})
    # Then the routine passes without claiming a remedy
    assert outcome.status is DiagnosticStatus.PASSED
    assert outcome.remedied is False
    assert outcome.findings["note"] == "no active fault on this component"


def test_reset_component_needs_a_component_or_code(state: DeviceState):
    # Given a reset request without parameters
    # When it is answered
    result = respond(state, request("reset_component"), NOW)
    # Then the result is an error naming the missing parameter
    assert result is not None
    assert result.status is DiagnosticStatus.ERROR
    assert "params.component or params.code" in result.findings["error"]


def test_an_unknown_routine_is_unsupported(state: DeviceState):
    # Given a request for a routine the device does not have
    # When it is answered
    result = respond(state, request("flash_firmware"), NOW)
    # Then the status is unsupported and the device lists what it can do
    assert result is not None
    assert result.status is DiagnosticStatus.UNSUPPORTED
    assert result.findings == {
        "routine": "flash_firmware",
        "supported": ["log_excerpt", "reset_component", "self_test", "sensor_snapshot"],
    }


def test_an_expired_request_is_ignored(state: DeviceState):
    # Given an active remotely fixable fault and a reset request that expired a second ago
    state.record_fault(fault("PSU-OVERVOLT", "fault-0007"))
    stale = request("reset_component", expires_in=timedelta(seconds=-1), code="PSU-OVERVOLT")
    # When it arrives
    result = respond(state, stale, NOW)
    # Then there is no answer and the device did nothing
    assert result is None
    assert set(state.active_faults) == {"PSU-OVERVOLT"}


def test_a_request_expiring_exactly_now_is_ignored(state: DeviceState):
    assert respond(state, request("self_test", expires_in=timedelta(0)), NOW) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"request_id": "req-0001", "routine": "self_test"}',
        json.dumps(
            {
                "request_id": "req-0001",
                "routine": "self_test",
                "expires_at": "2099-01-01T00:00:00Z",
                "priority": "high",
            }
        ).encode(),
    ],
    ids=["not-json", "missing-expiry", "unknown-field"],
)
def test_an_invalid_request_is_ignored(state: DeviceState, raw: bytes):
    assert respond(state, raw, NOW) is None


def test_a_valid_request_yields_a_result_for_that_request(state: DeviceState):
    # Given an active fixable fault
    state.record_fault(fault("PSU-OVERVOLT", "fault-0008"))
    # When a reset request arrives in time
    result = respond(state, request("reset_component", code="PSU-OVERVOLT"), NOW)
    # Then the result answers that request, says remedied and is stamped with the device clock
    assert result is not None
    assert result.request_id == "req-0001"
    assert (result.status, result.remedied, result.completed_at) == (
        DiagnosticStatus.PASSED,
        True,
        NOW,
    )
    # And the device log records the diagnostics run
    assert state.log[-1] == (
        "2025-03-01T12:00:00+00:00 DIAG reset_component request=req-0001 status=passed"
        " remedied=True"
    )


def test_results_are_deterministic_given_the_state():
    # Given two devices brought into the same state
    def build() -> DeviceState:
        device = DeviceState(thing="dev-1", firmware="2.1.0")
        device.record_fault(fault("FAN-STALL", "fault-0009", fan_rpm=120.0))
        return device

    first, second = build(), build()
    # When both answer the same requests
    # Then the results are identical
    for routine in ROUTINES:
        assert respond(first, request(routine, component="fan"), NOW) == respond(
            second, request(routine, component="fan"), NOW
        )
