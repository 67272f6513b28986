"""What each function's start (import + `deps()`) leaves for the invocation that needs it.

Issue 11: a cold start within 1.25x a bare boto3 start. The timings are a benchmark
(`python -m infra.coldstart`); these are the deterministic levers behind them, each pinned so it
cannot regress silently: a fresh interpreter starts the function as the runtime would (its folder
and the layer on sys.path, the template's environment for it) and must not have imported the
modules its first invocation does not use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from aftercare.runtime import on_first_use

from infra.coldstart import only
from infra.lambda_build import PackagingError, Toolchain
from infra.local.template import load_template
from infra.packaging import Runtime, functions_of
from tests.fakes.lambda_runtime import load_handler

ROOT = Path(__file__).resolve().parents[2]

START = """
import json, sys
import handler
handler.deps()
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("aftercare", "boto3")))))
"""


@cache
def template_environment() -> dict[str, dict[str, str]]:
    template = load_template(ROOT / "template.yaml")
    return {f.logical_id: f.environment for f in functions_of(template)}


@cache
def started(logical_id: str, folder: str) -> frozenset[str]:
    """The aftercare (and boto3) modules loaded once `folder`'s handler is imported and `deps()`
    built."""
    env = {
        **os.environ,
        **template_environment()[logical_id],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / folder), str(ROOT / "shared")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", START],
        cwd=ROOT / "functions" / folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return frozenset(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_telemetry_start_leaves_notifications_and_fault_intake_to_the_first_fired_rule():
    # Given the telemetry function started (most batches fire no maintenance rule)
    loaded = started("TelemetryFunction", "telemetry")
    # Then the notification stack and fault intake (what a fired rule uses) are not loaded
    stack = (
        "aftercare.adapters.notifications_store",
        "aftercare.adapters.messaging",
        "aftercare.domain.composition",
        "aftercare.domain.notifier",
        "aftercare.domain.pricing",
        "aftercare.domain.templates",
        "aftercare.domain.intake",
        "aftercare.domain.rules",
        "aftercare.adapters.dynamodb",
    )
    assert sorted(loaded & set(stack)) == []
    # ...while what every batch uses is
    assert {"aftercare.domain.telemetry_intake", "aftercare.adapters.health"} <= loaded


class FakeDesk:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def advise(self, facts: object, now: datetime) -> str:
        self.calls.append("advise")
        return "sent"

    def open_preventive(self, envelope: object) -> str:
        self.calls.append("open_preventive")
        return "opened:T-1"


def test_a_dependency_on_first_use_is_built_once_by_its_first_use():
    # Given a desk on first use, whose builder counts its calls
    built: list[FakeDesk] = []

    def build() -> FakeDesk:
        built.append(FakeDesk())
        return built[-1]

    desk = on_first_use(build)
    # When nothing has used it yet, then nothing is built
    assert built == []
    # When an advice and a preventive ticket go through it
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert desk.advise(object(), now) == "sent"
    assert desk.open_preventive(object()) == "opened:T-1"
    # Then one desk was built and both went to it
    assert len(built) == 1
    assert built[0].calls == ["advise", "open_preventive"]


def test_a_dependency_on_first_use_fails_as_its_builder_does():
    # Given a builder that fails (a data file that does not parse, say)
    def build() -> FakeDesk:
        raise ValueError("bad data")

    desk = on_first_use(build)
    # When it is first used, then the builder's error is what the caller sees
    with pytest.raises(ValueError, match="bad data"):
        desk.advise(object(), datetime(2026, 1, 1, tzinfo=UTC))


def test_the_telemetry_desk_builds_the_notifier_and_fault_intake_it_defers(monkeypatch):
    # Given the telemetry function's settings from the template's environment
    for name, value in template_environment()["TelemetryFunction"].items():
        monkeypatch.setenv(name, value)
    telemetry = load_handler("telemetry", "lean_starts_telemetry_desk")
    settings = telemetry.deps().settings
    # When the desk a fired rule uses is built
    desk = telemetry.service_desk(settings)
    # Then it has the notifier and fault intake, with the catalog and policy loaded
    from aftercare.domain.advice import ServiceDesk
    from aftercare.domain.notifier import Notifier

    assert isinstance(desk, ServiceDesk)
    assert isinstance(desk.notifier, Notifier)
    days = int(template_environment()["TelemetryFunction"]["REPEAT_WINDOW_DAYS"])
    assert desk.intake.repeat_window == timedelta(days=days)
    assert desk.intake.catalog.codes


def test_a_kpi_api_start_does_not_load_the_ticket_item_layout():
    # Given the KPI API started (it reads KPI items and the engineer directory)
    loaded = started("KpiApiFunction", "kpi_api")
    # Then the ticket item layout (calendar writes' audit entries only) and ticket paging are
    # not loaded
    assert sorted(loaded & {"aftercare.adapters.ticket_items", "aftercare.domain.paging"}) == []
    assert "aftercare.adapters.field_items" in loaded


def test_an_owners_start_leaves_the_ticket_writes_to_the_first_transfer():
    # Given the owners API started (claims and listings read tickets, only a transfer writes)
    loaded = started("OwnersFunction", "owners")
    # Then the ticket writes and the escalation and dispatch rules under them are not loaded
    writes = (
        "aftercare.adapters.dynamodb",
        "aftercare.adapters.ticket_writes",
        "aftercare.adapters.escalation",
        "aftercare.domain.escalation",
        "aftercare.domain.dispatch",
    )
    assert sorted(loaded & set(writes)) == []
    assert "aftercare.adapters.ticket_reads" in loaded


def test_the_owners_handover_is_the_ticket_store(monkeypatch):
    # Given the owners API's settings from the template's environment
    for name, value in template_environment()["OwnersFunction"].items():
        monkeypatch.setenv(name, value)
    owners = load_handler("owners", "lean_starts_owners_handler")
    settings = owners.load_settings(owners.Settings)
    # When the handover a transfer uses is built
    from aftercare.adapters.dynamodb import DynamoTicketStore

    handover = owners.ticket_handover(settings)
    # Then it is the ticket store on the template's tables
    assert isinstance(handover, DynamoTicketStore)
    assert handover.tickets_table == settings.tickets_table


def test_a_support_api_start_leaves_the_escalation_and_dispatch_rules_to_the_first_ticket():
    # Given the support API started (opening or classifying a ticket is what reads the
    # escalation rules; the raised-ticket routes that do are a route group of their own)
    loaded = started("ServiceApiFunction", "api")
    # Then the escalation rules, and the dispatch rules they bring, are not loaded
    rules = (
        "aftercare.domain.escalation",
        "aftercare.domain.dispatch",
        "aftercare.domain.dispatch_policy",
        "aftercare.domain.sla",
    )
    assert sorted(loaded & set(rules)) == []
    assert "aftercare.domain.support" in loaded


def test_a_support_api_start_leaves_its_route_groups_to_their_first_request():
    # Given the support API started (the ticket, device and diagnostics routes are its own)
    loaded = started("ServiceApiFunction", "api")
    # Then no route group is imported (each one by the first request to one of its routes),
    # nor what only they use: the field service's calendar, the answer service, the incident
    # desk, intake and classification for raised tickets
    groups = (
        "aftercare.api.field_routes",
        "aftercare.api.raised_routes",
        "aftercare.api.guide_routes",
        "aftercare.api.incident_routes",
        "aftercare.domain.calendar",
        "aftercare.domain.assist",
        "aftercare.domain.incident_desk",
        "aftercare.domain.intake",
        "aftercare.domain.classification",
    )
    assert sorted(loaded & set(groups)) == []
    assert {"aftercare.api.resolver", "aftercare.api.route_settings"} <= loaded


def test_a_fault_intake_start_still_loads_the_escalation_rules_every_new_ticket_reads():
    # Given fault intake started: its first invocation opens tickets
    loaded = started("FaultIntakeFunction", "fault_intake")
    # Then the escalation rules are loaded with the other intake rules, not by the first ticket
    assert "aftercare.domain.escalation" in loaded


def test_cold_start_figures_can_be_taken_for_a_few_functions():
    # Given a built stack's runtime with every function of the template
    runtime = Runtime(
        tools=Toolchain(sam=Path("sam"), python=Path("python3.12")),
        build_dir=Path("build"),
        site=Path("site"),
        functions=functions_of(load_template(ROOT / "template.yaml")),
    )
    # When only two are asked for, then only those are measured, in template order
    picked = only(runtime, ["KpiApiFunction", "ServiceApiFunction"])
    assert [f.logical_id for f in picked.functions] == ["ServiceApiFunction", "KpiApiFunction"]
    # ...without names, all of them; a name the template lacks is an error
    assert only(runtime, None) is runtime
    with pytest.raises(PackagingError, match="NoSuchFunction"):
        only(runtime, ["NoSuchFunction"])


def test_importing_the_layer_builds_no_model_validator():
    # Given a fresh interpreter importing every module of the layer
    code = """
import importlib, json, pkgutil
import aftercare
from pydantic import BaseModel
for module in pkgutil.walk_packages(aftercare.__path__, "aftercare."):
    importlib.import_module(module.name)
pending, built = list(BaseModel.__subclasses__()), []
while pending:
    model = pending.pop()
    pending += model.__subclasses__()
    if model.__module__.startswith("aftercare.") and model.__dict__.get("__pydantic_complete__"):
        built.append(f"{model.__module__}.{model.__qualname__}")
print(json.dumps(sorted(built)))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    # Then no model was built: defer_build is not enough when a module creates an instance at
    # import (a field default such as `Stopwords()`: use a default_factory)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_kpi_api_start_loads_neither_the_dispatch_nor_the_calendar_rules():
    # Given the KPI API started (engineer KPIs need working time, not dispatch or booking)
    loaded = started("KpiApiFunction", "kpi_api")
    # Then the dispatch policy, the calendar and the ticket domain under them are not loaded
    rules = (
        "aftercare.domain.dispatch_policy",
        "aftercare.domain.calendar",
        "aftercare.domain.availability",
        "aftercare.domain.tickets",
        "aftercare.domain.ports.records",
    )
    assert sorted(loaded & set(rules)) == []
    assert "aftercare.domain.kpis" in loaded


def test_a_kpi_aggregator_start_loads_no_engineer_or_working_time():
    # Given the KPI aggregator started (it counts ticket events; only the KPI API's
    # utilisation reads engineers' working time)
    loaded = started("KpiAggregatorFunction", "kpi_aggregator")
    # Then neither the field models nor the working-time arithmetic are loaded
    assert sorted(loaded & {"aftercare.models.field", "aftercare.domain.dispatch_time"}) == []
    assert "aftercare.domain.kpis" in loaded


def test_a_fault_intake_start_loads_neither_the_dispatch_rules_nor_ticket_paging():
    # Given fault intake started (the escalation rules every new ticket reads are loaded)
    loaded = started("FaultIntakeFunction", "fault_intake")
    # Then the dispatch rules (the escalation rules need only the dispatchable states) and the
    # listings' paging models (ticket reads page only for the APIs) are not loaded
    rules = (
        "aftercare.domain.dispatch",
        "aftercare.domain.dispatch_policy",
        "aftercare.domain.paging",
    )
    assert sorted(loaded & set(rules)) == []
    assert "aftercare.adapters.ticket_reads" in loaded


def test_a_dead_letter_recorder_start_loads_no_ticket_model():
    # Given the dead-letter recorder started (it parks messages, it reads no ticket)
    loaded = started("DeadLetterRecorderFunction", "dead_letter_recorder")
    # Then none of the ticket records, tickets or incident rules are loaded with its parked store
    ticket_world = (
        "aftercare.domain.ports.records",
        "aftercare.domain.tickets",
        "aftercare.models.tickets",
        "aftercare.domain.incidents",
    )
    assert sorted(loaded & set(ticket_world)) == []
    assert {"aftercare.adapters.parked", "aftercare.domain.ports.parked"} <= loaded


def test_a_ticket_store_start_loads_neither_the_incident_rules_nor_the_field_models():
    # Given a function that reads and writes tickets but runs no incident or field rule
    loaded = started("HoldSweeperFunction", "hold_sweeper")
    # Then the incident rules (a child ticket's link item is all the ticket writes need) and
    # the field models (a ticket's visits carry only the booking states) are not loaded
    others = (
        "aftercare.domain.incidents",
        "aftercare.adapters.incident_items",
        "aftercare.models.field",
        "aftercare.models.payloads",  # a ticket's severity is models.severity
    )
    assert sorted(loaded & set(others)) == []
    assert {"aftercare.adapters.ticket_writes", "aftercare.models.visits"} <= loaded


def test_a_diagnostics_start_does_not_load_the_incident_rules():
    # Given the diagnostics sweeper started (its ticket writes may carry an incident link)
    loaded = started("DiagnosticsSweeperFunction", "diagnostics_sweeper")
    # Then the incident rules are not loaded, only the link's model
    assert "aftercare.domain.incidents" not in loaded
    assert "aftercare.domain.incident_links" in loaded


def test_an_api_start_maps_errors_without_the_ticket_views():
    # Given the KPI and parked-message APIs started (every API imports the error mapping)
    for logical_id, folder in (("KpiApiFunction", "kpi_api"), ("ParkedApiFunction", "parked_api")):
        loaded = started(logical_id, folder)
        # Then the error body comes without the ticket and diagnostics views beside it
        assert "aftercare.api.errors" in loaded
        assert sorted(loaded & {"aftercare.models.api", "aftercare.models.tickets"}) == []


def test_a_stock_watcher_start_leaves_the_dispatch_rules_out():
    # Given the stock watcher started (a delivery wakes the tickets waiting for the part)
    loaded = started("StockWatcherFunction", "stock_watcher")
    # Then waking them needs neither the dispatch rules, their policy and prices, nor the
    # field models
    rules = (
        "aftercare.domain.dispatching",
        "aftercare.domain.dispatch_policy",
        "aftercare.domain.pricing",
        "aftercare.models.field",
    )
    assert sorted(loaded & set(rules)) == []
    assert "aftercare.domain.dispatch_waiting" in loaded


def function_folders() -> dict[str, str]:
    template = load_template(ROOT / "template.yaml")
    return {
        f.logical_id: Path(str(template.resources[f.logical_id].properties["CodeUri"])).name
        for f in functions_of(template)
    }


@pytest.mark.parametrize("logical_id", sorted(function_folders()))
def test_no_start_imports_boto3(logical_id):
    # Given any function started (its clients are botocore's, built on first use; boto3 would
    # add its resources and docs, 26 modules, to every start for nothing)
    loaded = started(logical_id, function_folders()[logical_id])
    # Then boto3 is not loaded, while the adapters' client module is
    assert sorted(m for m in loaded if m.startswith("boto3")) == []
    assert "aftercare.adapters.aws" in loaded or logical_id == "ConsoleFunction"
