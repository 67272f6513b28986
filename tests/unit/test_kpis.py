"""KPI facts: merged in any order to the same contributions; counters to figures."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from aftercare.domain.kpi_events import entry_updates, ticket_updates, visit_updates
from aftercare.domain.kpis import (
    contributions,
    difference,
    figures,
    load_kpi_definitions,
    merge,
    percentile,
)

DEFS = load_kpi_definitions()
T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
BREACH = {
    "at": T0.isoformat(),
    "kind": "sla_escalated",
    "detail": {"step": "response@100%", "action": "mark_breached"},
}


def meta(status: str, version: int, at: datetime, **extra):
    return {
        "ticket_id": "T-1",
        "region": "eu-west",
        "model": "RT-1",
        "category": "power",
        "priority": "P2",
        "status": status,
        "version": version,
        "opened_at": T0.isoformat(),
        "updated_at": at.isoformat(),
        "sla_response_due": (T0 + timedelta(hours=4)).isoformat(),
        "sla_resolution_due": (T0 + timedelta(hours=48)).isoformat(),
        **extra,
    }


def test_a_tickets_events_merge_to_the_same_counters_in_any_order():
    # Given a ticket's life: opened, first response after 20 min, resolved remotely, a breach
    opened = meta("open", 1, T0)
    responded = meta("diagnosing", 2, T0 + timedelta(minutes=20))
    resolved_at = T0 + timedelta(hours=3)
    resolved = meta(
        "resolved", 3, resolved_at, resolved_at=resolved_at.isoformat(), resolution="remote"
    )
    updates = [
        *ticket_updates("r1", None, opened, DEFS),
        *ticket_updates("r2", opened, responded, DEFS),
        *ticket_updates("r3", responded, resolved, DEFS),
        *entry_updates("r4", "T-1", BREACH),
    ]
    # When they are merged in every order (and one twice)
    results = set()
    for order in itertools.permutations([*updates, updates[1]]):
        facts = None
        for update in order:
            facts = merge(facts, update.facts)
        results.add(tuple(sorted(contributions(facts, DEFS).items())))
    # Then every order gives the same counters
    assert len(results) == 1
    counted = dict(next(iter(results)))
    assert counted[("all#all", "DAY#2026-12-01", "response_s")] == 20 * 60
    assert counted[("channel#device", "DAY#2026-12-01", "resolved_remote")] == 1
    assert counted[("region#eu-west", "DAY#2026-12-01", "breached_response")] == 1
    assert ("all#all", "OPENED#2026-12-01", "backlog_open") not in counted


def test_a_repeated_visit_takes_back_its_fix():
    # Given a visit counted as a first-time fix
    visit = {"booking_id": "B-1", "engineer_id": "E-ada", "model": "RT-1", "status": "completed",
             "start": T0.isoformat(), "outcome": "verified"}  # fmt: skip
    fixed = visit_updates("r1", visit)[0].facts
    repeated = visit_updates("r2", visit | {"outcome": "repeated"})[0].facts
    # When the repeat is merged
    diff = difference(contributions(fixed, DEFS), contributions(merge(fixed, repeated), DEFS))
    # Then the fix is taken back and the repeat counted, on the visit's day and engineer
    assert diff[("engineer#E-ada", "DAY#2026-12-01", "visits_fixed")] == -1
    assert diff[("engineer#E-ada", "DAY#2026-12-01", "visits_repeated")] == 1
    assert ("engineer#E-ada", "DAY#2026-12-01", "visits_verdict") not in diff


def test_percentiles_are_the_upper_bound_of_the_bucket_holding_the_rank():
    # Given 10 responses: 8 within 5 min, 1 within 60 min, 1 above the last bound
    counters = {"response_h0": 8, "response_h3": 1, "response_h9": 1}
    # Then the median is 5 min, p90 60 min, and p100 the last bound (a lower bound)
    assert percentile(counters, DEFS, "response", 0.5) == 5
    assert percentile(counters, DEFS, "response", 0.9) == 60
    assert percentile(counters, DEFS, "response", 1.0) == 2880
    assert percentile({}, DEFS, "response", 0.5) is None


def test_figures_without_events_are_null_not_zero():
    kpis = figures({}, DEFS, None)
    assert kpis["opened"] == 0 and kpis["csat"] is None and kpis["utilisation"] is None
