"""GET /kpis: who sees which figures, and the 4xx for a bad period or dimension."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler

KPI = load_handler("kpi_api", "kpi_api_handler")
MANAGER = {"token_use": "id", "sub": "m", "cognito:username": "mgr", "cognito:groups": "[managers]"}
ENGINEER = {
    "token_use": "id",
    "sub": "e",
    "cognito:username": "eng-ada",
    "cognito:groups": "[engineers]",
    "custom:engineer_id": "E-ada",
}
CUSTOMER = {
    "token_use": "id",
    "sub": "c",
    "cognito:username": "cust",
    "cognito:groups": "[customers]",
    "custom:customer_id": "c-0001",
}


COUNTED_ON = date(2026, 12, 2)


class FakeCounters:
    """KpiTable's reads: two regions and one engineer with a day of counters each."""

    def __init__(self) -> None:
        self.rows = {
            "all#all": {"opened": 3, "responded": 2, "response_s": 1200, "response_h1": 2},
            "region#eu-west": {"opened": 2},
            "region#ap-east": {"opened": 1},
            "engineer#E-ada": {"visits_verdict": 2, "visits_fixed": 1},
            "engineer#E-linus": {"visits_verdict": 1, "visits_fixed": 1},
        }

    def counters(self, dim: str, first: date, last: date) -> list[dict[str, Any]]:
        return [self.rows[dim]] if dim in self.rows else []

    def daily_counters(self, dim: str, first: date, last: date) -> dict[date, dict[str, Any]]:
        on = COUNTED_ON  # the fake's one day with events
        return {on: self.rows[dim]} if dim in self.rows and first <= on <= last else {}

    def backlog_rows(self, dim: str) -> dict[date, dict[str, Any]]:
        return {date(2026, 12, 1): {"backlog_open": 1}} if dim == "all#all" else {}

    def dimension_values(self, name: str) -> list[str]:
        return [d.split("#", 1)[1] for d in self.rows if d.startswith(f"{name}#")]


class NoEngineers:
    def list_engineers(self, region: str | None = None) -> list[Any]:
        return []


class FakeDeps:
    store = FakeCounters()
    directory = NoEngineers()


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KPI, "deps", FakeDeps)


def get(path: str, claims: dict[str, Any]) -> tuple[int, Any]:
    response = KPI.app.resolve(http_api_event("GET", path, claims), None)
    return response["statusCode"], json.loads(response["body"])


def test_a_manager_sees_the_total_and_every_region():
    # Given a manager, When they read the KPIs in total and by region
    status, total = get("/kpis?from=2026-12-01&to=2026-12-06", MANAGER)
    _, regions = get("/kpis?from=2026-12-01&to=2026-12-06&by=region", MANAGER)
    # Then the total has the counts, the mean response and its histogram median, and backlog
    assert status == 200
    assert total["period"] == {"from": "2026-12-01", "to": "2026-12-06"}
    assert total["kpis"]["opened"] == 3
    assert (total["kpis"]["response_mean_min"], total["kpis"]["response_median_min"]) == (10.0, 15)
    assert total["kpis"]["backlog"]["by_status"]["open"] == 1
    # And one figure set per region, named by its group
    assert {r["group"]["region"]: r["kpis"]["opened"] for r in regions} == {
        "eu-west": 2,
        "ap-east": 1,
    }


def test_an_engineer_sees_only_their_own_figures():
    # Given an engineer, When they read the KPIs (in total, or by engineer)
    _, mine = get("/kpis", ENGINEER)
    _, listed = get("/kpis?by=engineer", ENGINEER)
    # Then they get their own engineer group only
    assert mine["group"] == {"engineer": "E-ada"} and mine["kpis"]["first_time_fix_rate"] == 0.5
    assert [r["group"] for r in listed] == [{"engineer": "E-ada"}]
    # And another breakdown is forbidden
    status, _ = get("/kpis?by=region", ENGINEER)
    assert status == 403


def test_customers_get_no_kpis():
    # Given a customer, When they ask for KPIs, Then 403
    status, _ = get("/kpis", CUSTOMER)
    assert status == 403


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("from=2026-12-06&to=2026-12-01", "invalid_range"),
        ("from=2026-01-01&to=2026-04-03", "invalid_range"),
        ("to=0001-01-02", "invalid_range"),
        ("by=colour", "invalid_dimension"),
        ("by=all", "invalid_dimension"),
    ],
)
def test_a_bad_period_or_dimension_is_422_with_its_reason(query, reason):
    # Given a manager, When the period is reversed or too long, or `by` names no dimension
    status, body = get(f"/kpis?{query}", MANAGER)
    # Then 422 with the reason
    assert (status, body["reason"]) == (422, reason)


def test_the_trend_is_one_call_with_a_figure_set_per_day():
    # Given a manager, When they ask for three days by day
    status, series = get("/kpis?from=2026-12-01&to=2026-12-03&by=day", MANAGER)
    # Then one figure set per day, oldest first, the days without events at zero
    assert status == 200
    assert [d["group"] for d in series] == [{"day": f"2026-12-0{n}"} for n in (1, 2, 3)]
    assert [d["period"]["from"] for d in series] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert [d["kpis"]["opened"] for d in series] == [0, 3, 0]
    assert series[1]["kpis"]["response_mean_min"] == 10.0
    # And no backlog (a figure of now, read from the total)
    assert all("backlog" not in d["kpis"] for d in series)


def test_an_engineers_trend_is_their_own():
    # Given an engineer, When they ask for their trend
    status, series = get("/kpis?from=2026-12-02&to=2026-12-03&by=day", ENGINEER)
    # Then each day is their own engineer group
    assert status == 200
    assert [d["group"] for d in series] == [
        {"day": "2026-12-02", "engineer": "E-ada"},
        {"day": "2026-12-03", "engineer": "E-ada"},
    ]
    assert series[0]["kpis"]["first_time_fix_rate"] == 0.5
    assert series[1]["kpis"]["first_time_fix_rate"] is None
