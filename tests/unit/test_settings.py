"""Settings fail fast: a missing variable fails the first invocation with its name."""

from __future__ import annotations

import pytest
from aftercare.settings import EnvSettings, MissingSettings, load_settings

from tests.fakes.lambda_runtime import FakeContext, load_handler

INTAKE_ENV = {
    "DEVICES_TABLE": "devices",
    "CUSTOMERS_TABLE": "customers",
    "TICKETS_TABLE": "tickets",
    "PARKED_TABLE": "parked",
    "INVENTORY_TABLE": "inventory",
    "REPEAT_WINDOW_DAYS": "30",
    "HOLD_HOURS": "72",
}


class Example(EnvSettings):
    tickets_table: str
    hold_hours: int


def test_each_missing_or_invalid_variable_is_named(monkeypatch):
    monkeypatch.delenv("TICKETS_TABLE", raising=False)
    monkeypatch.setenv("HOLD_HOURS", "soon")
    with pytest.raises(MissingSettings) as raised:
        load_settings(Example)
    message = str(raised.value)
    assert message.startswith("Example: environment variable TICKETS_TABLE is missing; ")
    assert "HOLD_HOURS: Input should be a valid integer" in message


def test_a_missing_variable_fails_the_invocation_not_the_records(monkeypatch):
    # Given the fault intake deployed without HOLD_HOURS
    for name, value in INTAKE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HOLD_HOURS")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    intake = load_handler("fault_intake", "handler_fault_intake_settings")
    record = {"messageId": "m-1", "body": "{}", "attributes": {"ApproximateReceiveCount": "1"}}
    # When its first batch arrives
    with pytest.raises(MissingSettings, match="HOLD_HOURS is missing"):
        intake.handler({"Records": [record]}, FakeContext())
    # Then the invocation failed naming the variable, instead of answering with batch failures
    intake.deps.cache_clear()


class WithDefault(EnvSettings):
    inventory_table: str
    service_level: float = 0.95


def test_values_are_read_by_upper_case_name_and_converted():
    settings = load_settings(WithDefault, {"INVENTORY_TABLE": "inv", "SERVICE_LEVEL": "0.9"})
    assert (settings.inventory_table, settings.service_level) == ("inv", 0.9)
    assert load_settings(WithDefault, {"INVENTORY_TABLE": "inv"}).service_level == 0.95
    with pytest.raises(MissingSettings, match="INVENTORY_TABLE is missing"):
        load_settings(WithDefault, {"inventory_table": "lower-case names are not read"})
