"""`GET /devices/{thing}/telemetry`: a device's latest readings and daily temperature series
for the console's chart; staff any device, a customer only their own (else 404)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aftercare.domain.health import DailyTemp, DeviceHealth

from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler

OWNERS = load_handler("owners", "owners_telemetry_handler")
SEEN = datetime(2026, 11, 7, 9, 30, tzinfo=UTC)
ENGINEER = {"token_use": "id", "sub": "e", "cognito:username": "eng-ada",
            "cognito:groups": "[engineers]"}  # fmt: skip
MANAGER = {"token_use": "id", "sub": "m", "cognito:username": "mgr-grace",
           "cognito:groups": "[managers]"}  # fmt: skip
OWNER = {"token_use": "id", "sub": "c", "cognito:username": "cust-0001",
         "cognito:groups": "[customers]", "custom:customer_id": "c-0001"}  # fmt: skip
NEIGHBOUR = {**OWNER, "cognito:username": "cust-0002", "custom:customer_id": "c-0002"}

HEALTH = DeviceHealth(
    thing="ac-hp-0001",
    model="AC-HP",
    customer_id="c-0001",
    firmware="2.4.1",
    uptime_s=86_400,
    first_seen=datetime(2026, 11, 1, tzinfo=UTC),
    last_seen=SEEN,
    last_sent_at=SEEN,
    reports=40,
    temp_c=47.5,
    temp_ewma=46.9,
    daily_temp={
        "2026-11-05": DailyTemp(total=90.0, count=2),
        "2026-11-06": DailyTemp(total=138.0, count=3),
        "2026-11-07": DailyTemp(total=47.5, count=1),
    },
    filter_life_pct=62.0,
)
DEVICES = {
    "ac-hp-0001": {"thing": "ac-hp-0001", "model": "AC-HP", "customer_id": "c-0001"},
    "ac-hp-0009": {"thing": "ac-hp-0009", "model": "AC-HP", "customer_id": "c-0001"},
}


class Registry:
    def device(self, thing: str) -> dict[str, Any] | None:
        return DEVICES.get(thing)


class Healths:
    def healths(self, things: Sequence[str]) -> dict[str, DeviceHealth]:
        return {t: HEALTH for t in things if t == HEALTH.thing}


@pytest.fixture(autouse=True)
def wired(monkeypatch: pytest.MonkeyPatch) -> None:
    deps = SimpleNamespace(store=Registry(), health=Healths())
    monkeypatch.setattr(OWNERS, "deps", lambda: deps)


def call(path: str, claims: dict[str, Any]) -> tuple[int, Any]:
    response = OWNERS.app.resolve(http_api_event("GET", path, claims), None)
    return response["statusCode"], json.loads(response["body"])


def test_staff_and_the_owner_see_the_latest_readings_and_the_daily_series():
    for claims in (ENGINEER, MANAGER, OWNER):
        status, body = call("/devices/ac-hp-0001/telemetry", claims)
        assert status == 200
        assert body["latest"]["temp_c"] == 47.5 and body["latest"]["filter_life_pct"] == 62.0
        assert body["latest"]["sent_at"] == "2026-11-07T09:30:00Z" and body["reports"] == 40
        # oldest first, the mean of each day's readings
        assert [(d["day"], d["temp_c_mean"], d["reports"]) for d in body["daily"]] == [
            ("2026-11-05", 45.0, 2),
            ("2026-11-06", 46.0, 3),
            ("2026-11-07", 47.5, 1),
        ]


def test_the_series_is_bounded_by_from_to_and_limit():
    days = call("/devices/ac-hp-0001/telemetry?from=2026-11-06", ENGINEER)[1]["daily"]
    assert [d["day"] for d in days] == ["2026-11-06", "2026-11-07"]
    days = call("/devices/ac-hp-0001/telemetry?to=2026-11-06&limit=1", ENGINEER)[1]["daily"]
    assert [d["day"] for d in days] == ["2026-11-06"]


def test_a_device_that_never_reported_has_no_readings():
    status, body = call("/devices/ac-hp-0009/telemetry", OWNER)
    assert status == 200 and body["latest"] is None and body["daily"] == []


def test_another_customers_device_reads_like_a_missing_one():
    status, body = call("/devices/ac-hp-0001/telemetry", NEIGHBOUR)
    missing = call("/devices/ac-hp-7777/telemetry", ENGINEER)
    assert (status, body["reason"]) == (404, "not_found") == (missing[0], missing[1]["reason"])


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("from=2026-11-07&to=2026-11-05", "invalid_range"),
        ("limit=0", "validation_error"),
        ("limit=32", "validation_error"),
        ("from=last-week", "validation_error"),
    ],
)
def test_a_bad_range_is_a_422_with_a_reason(query, reason):
    status, body = call(f"/devices/ac-hp-0001/telemetry?{query}", ENGINEER)
    assert (status, body["reason"]) == (422, reason)
