"""Settings fail fast: a missing variable fails the first invocation with its name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from aftercare.settings import EnvSettings, MissingSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
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


def load_intake() -> ModuleType:
    path = ROOT / "functions" / "fault_intake" / "handler.py"
    spec = importlib.util.spec_from_file_location("handler_fault_intake_settings", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Context:
    function_name = "fault-intake"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fault-intake"
    aws_request_id = "req-1"


def test_a_missing_variable_fails_the_invocation_not_the_records(monkeypatch):
    # Given the fault intake deployed without HOLD_HOURS
    for name, value in INTAKE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HOLD_HOURS")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    intake = load_intake()
    record = {"messageId": "m-1", "body": "{}", "attributes": {"ApproximateReceiveCount": "1"}}
    # When its first batch arrives
    with pytest.raises(MissingSettings, match="HOLD_HOURS is missing"):
        intake.handler({"Records": [record]}, Context())
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
