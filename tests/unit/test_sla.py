"""SLA breaches from ticket changes: a response or resolution after its due time."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aftercare.domain.sla import SlaTargetKind, sla_breaches
from aftercare.domain.tickets import Ticket

from tests.fakes.tickets import a_ticket

ROOT = Path(__file__).resolve().parents[2]
OPENED = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RESPONSE_DUE = OPENED + timedelta(hours=4)
RESOLUTION_DUE = OPENED + timedelta(hours=48)


def image(status: str, updated_at: datetime, **more: Any) -> Ticket:
    """The ticket as it is after a change (the stream adapter reads each image as a Ticket)."""
    return a_ticket(
        OPENED,
        "T-SLA",
        status=status,
        updated_at=updated_at,
        sla_response_due=RESPONSE_DUE,
        sla_resolution_due=RESOLUTION_DUE,
        **more,
    )


def test_a_ticket_taken_up_after_its_response_due_time_breaches_the_response_target():
    # Given an open ticket whose response was due at noon
    before = image("open", OPENED)
    # When an engineer schedules it half an hour later
    after = image("scheduled", RESPONSE_DUE + timedelta(minutes=30))
    # Then the response target is breached, 30 minutes late
    [breach] = sla_breaches(before, after)
    assert (breach.ticket_id, breach.kind) == ("T-SLA", SlaTargetKind.RESPONSE)
    assert breach.late_by == timedelta(minutes=30)


def test_a_ticket_taken_up_in_time_breaches_nothing():
    # Given an open ticket, When it is taken up exactly at its due time
    after = image("diagnosing", RESPONSE_DUE)
    # Then no target is missed
    assert sla_breaches(image("open", OPENED), after) == []


def test_a_late_resolution_breaches_the_resolution_target_only_once_taken_up():
    # Given a ticket in repair (its response was in time)
    before = image("in_repair", OPENED + timedelta(hours=30))
    # When it is resolved after its resolution due time
    late = RESOLUTION_DUE + timedelta(hours=2)
    after = image("resolved", late, resolved_at=late)
    # Then only the resolution target is breached, by two hours
    [breach] = sla_breaches(before, after)
    assert breach.kind is SlaTargetKind.RESOLUTION
    assert breach.late_by == timedelta(hours=2)


def test_an_open_ticket_resolved_late_breaches_both_targets():
    # Given a ticket nobody took up, When it is resolved after both due times
    late = RESOLUTION_DUE + timedelta(minutes=1)
    breaches = sla_breaches(image("open", OPENED), image("resolved", late, resolved_at=late))
    # Then both targets count
    assert {b.kind for b in breaches} == {SlaTargetKind.RESPONSE, SlaTargetKind.RESOLUTION}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, image("open", OPENED)),  # a new ticket
        (image("open", OPENED), image("open", RESOLUTION_DUE)),  # a new occurrence, still open
        (image("resolved", OPENED), image("closed", RESOLUTION_DUE)),  # closing
    ],
    ids=["insert", "same-status", "closing"],
)
def test_changes_that_meet_no_target_breach_nothing(before, after):
    # Given/When a change that neither takes the ticket up nor resolves it
    # Then nothing is counted, however late it is
    assert sla_breaches(before, after) == []


def load_notifier() -> ModuleType:
    path = ROOT / "functions/notifier/handler.py"
    spec = importlib.util.spec_from_file_location("handler_notifier_sla_unit", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_notifier_counts_a_breach_as_a_metric_by_target(capsys):
    # Given the notifier and a ticket resolved an hour after its resolution due time
    notifier = load_notifier()
    late = RESOLUTION_DUE + timedelta(hours=1)
    [breach] = sla_breaches(image("in_repair", OPENED), image("resolved", late, resolved_at=late))
    # When it reports the breach
    notifier.report_breach(breach)
    # Then CloudWatch gets one SlaBreached (namespace Aftercare, the alarm's) for that target
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    [emf] = [blob for blob in blobs if "SlaBreached" in blob]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Aftercare"
    assert (emf["SlaBreached"], emf["target"]) == ([1.0], "resolution")
