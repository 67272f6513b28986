"""Reconciliation: a simulated month of tickets, visits, bookings and surveys, delivered to the
KpiAggregator as stream records shuffled out of order with a fifth of them redelivered, gives
the same KPIs (to the documented rounding) as a plain recount of the month's raw records.

The recount below does not use `aftercare.domain.kpis`: it reads the simulation's own records
(the truth) and applies the README's definitions directly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import client, to_item
from aftercare.adapters.kpi_store import DynamoKpiStore
from aftercare.domain.access import Caller
from aftercare.domain.kpi_report import kpi_report
from aftercare.domain.kpis import load_kpi_definitions
from aftercare.models.field import Engineer
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from infra.kpi_summary import kpi_summary
from infra.local import moto_patches
from infra.target import Target
from tests.fakes.aws import use_fake_credentials
from tests.fakes.lambda_runtime import FakeContext, load_handler
from tests.fakes.tables import create_template_tables

MONTH_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
DAYS = 28
REGIONS = ("eu-west", "eu-central", "ap-east")
ENGINEERS = ("E-ada", "E-linus")
MANAGER = Caller(subject="m", username="mgr", groups=frozenset({"managers"}))


@dataclass
class Truth:
    """One simulated ticket as it really happened."""

    ticket_id: str
    region: str
    priority: str
    channel: str | None
    opened_at: datetime
    response_due: datetime
    resolution_due: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    engineer: str | None = None
    status: str = "open"
    repeated: bool = False
    breached: list[datetime] = field(default_factory=list)
    survey_sent_at: datetime | None = None
    survey_at: datetime | None = None
    rating: int | None = None
    visits: list[dict[str, Any]] = field(default_factory=list)  # booking, outcome, day


class Simulation:
    """Builds the month and the stream records that carry it (attribute-typed images)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.records: list[dict[str, Any]] = []
        self.tickets: list[Truth] = []
        self.bookings: list[dict[str, Any]] = []
        self.images: dict[tuple[str, str], dict[str, Any]] = {}
        self.serial = 0

    def record(self, pk: str, sk: str, new: dict[str, Any]) -> None:
        self.serial += 1
        old = self.images.get((pk, sk))
        self.images[(pk, sk)] = new
        data: dict[str, Any] = {
            "Keys": to_item({"pk": pk, "sk": sk}),
            "NewImage": to_item({"pk": pk, "sk": sk, **new}),
            "SequenceNumber": f"{self.serial:021d}",
        }
        if old is not None:
            data["OldImage"] = to_item({"pk": pk, "sk": sk, **old})
        self.records.append(
            {
                "eventID": f"ev-{self.serial:06d}",
                "eventName": "MODIFY" if old else "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": data,
            }
        )

    def meta(self, t: Truth, version: int, at: datetime, **extra: Any) -> None:
        image: dict[str, Any] = {
            "ticket_id": t.ticket_id,
            "region": t.region,
            "model": "RT-1",
            "category": "power",
            "priority": t.priority,
            "status": t.status,
            "version": version,
            "opened_at": t.opened_at.isoformat(),
            "updated_at": at.isoformat(),
            "sla_response_due": t.response_due.isoformat(),
            "sla_resolution_due": t.resolution_due.isoformat(),
            **extra,
        }
        if t.channel:
            image["channel"] = t.channel
        if t.resolved_at:
            image |= {"resolved_at": t.resolved_at.isoformat(), "resolution": t.resolution}
            if t.engineer:
                image["visit"] = {"booking_id": "b", "engineer_id": t.engineer, "status": "x"}
        self.record(f"TICKET#{t.ticket_id}", "META", image)

    def entry(self, t: Truth, at: datetime, kind: str, detail: dict[str, Any]) -> None:
        sk = f"EVT#{at.isoformat()}#{kind}#{len(self.records)}"
        self.record(
            f"TICKET#{t.ticket_id}",
            sk,
            {"at": at.isoformat(), "kind": kind, "actor": "x", "detail": detail},
        )

    def visit(self, t: Truth, booking: str, engineer: str, start: datetime, outcome: str) -> None:
        self.record(
            f"TICKET#{t.ticket_id}",
            f"VISIT#{booking}",
            {
                "booking_id": booking,
                "ticket_id": t.ticket_id,
                "engineer_id": engineer,
                "model": "RT-1",
                "fault_code": "PSU",
                "status": "completed" if outcome != "cannot_complete" else "cannot_complete",
                "outcome": outcome,
                "start": start.isoformat(),
                "updated_at": (start + timedelta(hours=1)).isoformat(),
            },
        )

    def booking(
        self, booking: str, engineer: str, region: str, start: datetime, status: str, version: int
    ) -> None:
        image = {
            "booking_id": booking,
            "engineer_id": engineer,
            "region": region,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=90)).isoformat(),
            "status": status,
            "version": version,
        }
        self.record(f"BOOKING#{booking}", "META", image)

    def month(self, tickets: int) -> None:
        for n in range(tickets):
            self.ticket(n)

    def ticket(self, n: int) -> None:
        rng = self.rng
        opened = MONTH_START + timedelta(minutes=rng.randrange(0, (DAYS - 3) * 24 * 60))
        t = Truth(
            ticket_id=f"T-{n:04d}",
            region=rng.choice(REGIONS),
            priority=rng.choice(("P1", "P2", "P3")),
            channel=rng.choice((None, None, "app")),
            opened_at=opened,
            response_due=opened + timedelta(hours=4),
            resolution_due=opened + timedelta(hours=48),
        )
        self.tickets.append(t)
        repeat_of = self.repeat_candidate(t)
        self.meta(t, 1, opened, **({"repeat_of": repeat_of.ticket_id} if repeat_of else {}))
        if repeat_of is not None:
            repeat_of.repeated = True
            for v in repeat_of.visits:
                if v["outcome"] in ("verified", "unverified"):
                    v["outcome"] = "repeated"
                    self.visit(repeat_of, v["booking"], v["engineer"], v["start"], "repeated")
        if rng.random() < 0.1:
            return  # still open: backlog
        t.first_response_at = opened + timedelta(minutes=rng.choice((3, 20, 50, 200, 300, 900)))
        if t.first_response_at > t.response_due:
            at = t.response_due
            t.breached.append(at)
            self.entry(t, at, "sla_escalated", {"step": "response@100%", "action": "mark_breached"})
        t.status = "diagnosing"
        self.meta(t, 2, t.first_response_at)
        if rng.random() < 0.15:
            return
        if rng.random() < 0.5:
            self.resolve(
                t, 3, "remote", t.first_response_at + timedelta(minutes=rng.randrange(5, 600))
            )
        else:
            self.on_site(t)
        if t.resolved_at and rng.random() < 0.8:
            t.survey_sent_at = t.resolved_at + timedelta(hours=2)
            self.entry(
                t, t.survey_sent_at, "notification", {"notification": "survey", "status": "sent"}
            )
            if rng.random() < 0.7:
                t.rating = rng.randint(1, 5)
                t.survey_at = t.survey_sent_at + timedelta(hours=5)
                self.entry(
                    t, t.survey_at, "survey_answered", {"rating": t.rating, "survey_id": "s"}
                )

    def repeat_candidate(self, t: Truth) -> Truth | None:
        done = [
            x
            for x in self.tickets[:-1]
            if x.resolved_at
            and not x.repeated
            and x.resolved_at < t.opened_at
            and t.opened_at - x.resolved_at < timedelta(days=30)
        ]
        return self.rng.choice(done) if done and self.rng.random() < 0.2 else None

    def on_site(self, t: Truth) -> None:
        rng = self.rng
        t.status = "scheduled"
        self.meta(t, 3, t.first_response_at + timedelta(minutes=1))  # type: ignore[operator]
        start = t.opened_at + timedelta(hours=rng.randrange(5, 40))
        engineer = rng.choice(ENGINEERS)
        booking = f"B-{t.ticket_id}-1"
        self.booking(booking, engineer, t.region, start, "scheduled", 1)
        self.booking(booking, engineer, t.region, start, "on_site", 2)
        first_ok = rng.random() < 0.7
        outcome = (
            rng.choice(("verified", "unverified"))
            if first_ok
            else rng.choice(("failed", "cannot_complete"))
        )
        self.visit(t, booking, engineer, start, "in_progress")
        self.visit(t, booking, engineer, start, outcome)
        self.booking(
            booking,
            engineer,
            t.region,
            start,
            "completed" if outcome != "cannot_complete" else "cannot_complete",
            3,
        )
        t.visits.append(
            {"booking": booking, "engineer": engineer, "start": start, "outcome": outcome}
        )
        if first_ok:
            t.engineer = engineer
            self.resolve(t, 4, "on_site", start + timedelta(hours=2))
            return
        second = f"B-{t.ticket_id}-2"
        start2 = start + timedelta(days=1)
        self.booking(second, engineer, t.region, start2, "scheduled", 1)
        if rng.random() < 0.3:
            self.booking(second, engineer, t.region, start2, "cancelled", 2)  # never visited
            return
        self.visit(t, second, engineer, start2, "verified")
        t.visits.append(
            {"booking": second, "engineer": engineer, "start": start2, "outcome": "verified"}
        )
        t.engineer = engineer
        self.resolve(t, 4, "on_site", start2 + timedelta(hours=2))

    def resolve(self, t: Truth, version: int, how: str, at: datetime) -> None:
        t.status, t.resolved_at, t.resolution = "resolved", at, how
        self.meta(t, version, at)


def engineer(engineer_id: str) -> Engineer:
    shift = [{"start": "08:00", "end": "16:00"}]
    return Engineer.model_validate(
        {
            "engineer_id": engineer_id,
            "name": engineer_id,
            "kind": "in_house",
            "skills": [{"level": 2}],
            "regions": list(REGIONS),
            "home": {"lat": 53.3, "lon": -6.2},
            "time_zone": "UTC",
            "working_hours": {d: shift for d in ("mon", "tue", "wed", "thu", "fri")},
        }
    )


class Directory:
    def list_engineers(self, region: str | None = None) -> list[Engineer]:
        return [engineer(e) for e in ENGINEERS]


# ---- the independent recount


def _in(at: datetime | None, first: date, last: date) -> bool:
    return at is not None and first <= at.date() <= last


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _bucketed(values: list[float], bounds: list[int], q: float) -> float | None:
    """The bound of the bucket holding the ceil(q·n)-th smallest value (README's rounding)."""
    if not values:
        return None
    value = sorted(values)[max(1, math.ceil(q * len(values))) - 1]
    return float(next((b for b in bounds if value <= b), bounds[-1]))


def recount(
    tickets: list[Truth], bookings: list[dict[str, Any]], first: date, last: date
) -> dict[str, Any]:
    defs = load_kpi_definitions()
    responded = [t for t in tickets if _in(t.first_response_at, first, last)]
    resolved = [t for t in tickets if _in(t.resolved_at, first, last)]
    r_min = [(t.first_response_at - t.opened_at).total_seconds() / 60 for t in responded]  # type: ignore[operator]
    s_min = [(t.resolved_at - t.opened_at).total_seconds() / 60 for t in resolved]  # type: ignore[operator]
    visits = [v for t in tickets for v in t.visits if first <= v["start"].date() <= last]
    answered = [t for t in tickets if _in(t.survey_at, first, last)]
    live = [
        b for b in bookings if b["status"] != "cancelled" and first <= b["start"].date() <= last
    ]
    busy = sum(90 * 60 + defs.travel_minutes_per_booking * 60 for _ in live)
    workdays = sum(
        1 for d in range((last - first).days + 1) if (first + timedelta(days=d)).weekday() < 5
    )
    return {
        "opened": sum(1 for t in tickets if _in(t.opened_at, first, last)),
        "responded": len(responded),
        "response_mean_min": round(sum(int(m * 60) for m in r_min) / len(r_min) / 60, 1)
        if r_min
        else None,
        "response_median_min": _bucketed(r_min, defs.histograms["response"], 0.5),
        "response_p90_min": _bucketed(r_min, defs.histograms["response"], 0.9),
        "resolved": len(resolved),
        "resolve_mean_min": round(sum(int(m * 60) for m in s_min) / len(s_min) / 60, 1)
        if s_min
        else None,
        "resolve_median_min": _bucketed(s_min, defs.histograms["resolve"], 0.5),
        "resolve_p90_min": _bucketed(s_min, defs.histograms["resolve"], 0.9),
        "first_time_fix_rate": _ratio(
            sum(v["outcome"] in ("verified", "unverified") for v in visits), len(visits)
        ),
        "repair_success_rate": _ratio(sum(not t.repeated for t in resolved), len(resolved)),
        "remote_fix_ratio": _ratio(sum(t.resolution == "remote" for t in resolved), len(resolved)),
        "self_service_ratio": _ratio(0, len(resolved)),
        "repeat_fault_rate": _ratio(sum(t.repeated for t in resolved), len(resolved)),
        "sla_response_compliance": _ratio(
            sum(t.first_response_at <= t.response_due for t in responded),
            len(responded),  # type: ignore[operator]
        ),
        "sla_resolution_compliance": _ratio(
            sum(t.resolved_at <= t.resolution_due for t in resolved),
            len(resolved),  # type: ignore[operator]
        ),
        "sla_breaches": sum(1 for t in tickets for at in t.breached if first <= at.date() <= last),
        "csat": _ratio(sum(t.rating >= 4 for t in answered), len(answered)),  # type: ignore[operator]
        "survey_response_rate": _ratio(
            len(answered), sum(1 for t in tickets if _in(t.survey_sent_at, first, last))
        ),
        "surveys_answered": len(answered),
        "visits": len(visits),
        "bookings": len(live),
        "utilisation": _ratio(busy, workdays * 8 * 3600 * len(ENGINEERS)),
    }


def final_bookings(sim: Simulation) -> list[dict[str, Any]]:
    out = []
    for (pk, _sk), image in sim.images.items():
        if pk.startswith("BOOKING#"):
            out.append({"status": image["status"], "start": datetime.fromisoformat(image["start"])})
    return out


# ---- the test


@pytest.fixture
def kpi_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    use_fake_credentials(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # The local stack's transactions (check all conditions, copy only the touched items): moto's
    # own deep-copies the table on every transaction, quadratic over a month of records.
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", moto_patches.transact_write_items)
    with mock_aws():
        client.cache_clear()
        ddb = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        create_template_tables(ddb, ["KpiTable"])
        monkeypatch.setenv("KPI_TABLE", "aftercare-kpis-test")
        yield {"ddb": ddb, "table": "aftercare-kpis-test"}
        client.cache_clear()


@pytest.mark.parametrize("seed", [14, 99])
def test_a_shuffled_month_with_redeliveries_reconciles_with_a_recount(
    kpi_env: dict[str, Any], seed: int
) -> None:
    # Given a month of 60 tickets (responses, remote and on-site fixes, visits that could not
    # complete, repeats that cancel a first-time fix, breaches, surveys, bookings)
    sim = Simulation(seed=seed)
    sim.month(60)
    # ... delivered out of order, a fifth of the records twice, in batches with partial failures
    records = sim.records + sim.rng.sample(sim.records, len(sim.records) // 5)
    sim.rng.shuffle(records)
    aggregator = load_handler("kpi_aggregator", "handler_kpi_reconciliation")
    for start in range(0, len(records), 50):
        response = aggregator.handler({"Records": records[start : start + 50]}, FakeContext())
        assert response["batchItemFailures"] == []
    # When the month's KPIs are read, in total and per region
    store = DynamoKpiStore(table=kpi_env["table"], defs=load_kpi_definitions(), ddb=kpi_env["ddb"])
    first, last = MONTH_START.date(), (MONTH_START + timedelta(days=DAYS - 1)).date()
    total = kpi_report(store, Directory(), MANAGER, first=first, last=last, by=None, today=last)
    by_region = kpi_report(
        store, Directory(), MANAGER, first=first, last=last, by="region", today=last
    )
    # Then every figure equals the recount of the raw records (ratios to 4 places, minutes to 1)
    assert not isinstance(total, list) and isinstance(by_region, list)
    expected = recount(sim.tickets, final_bookings(sim), first, last)
    assert {k: total.kpis[k] for k in expected} == expected
    assert expected["opened"] == 60 and expected["repeat_fault_rate"]
    for group in by_region:
        region = group.group["region"]  # type: ignore[index]
        mine = [t for t in sim.tickets if t.region == region]
        want = recount(mine, [], first, last)
        skip = {"utilisation", "bookings", "visits", "first_time_fix_rate"}  # by engineer/model
        assert {k: group.kpis[k] for k in want if k not in skip} == {
            k: v for k, v in want.items() if k not in skip
        }
    # And the per-day series (`by=day`, the dashboard's trend) reads each day as a one-day
    # period would, in one call
    series = kpi_report(store, Directory(), MANAGER, first=first, last=last, by="day", today=last)
    assert isinstance(series, list) and len(series) == DAYS
    assert sum(d.kpis["opened"] for d in series) == total.kpis["opened"]
    for figures in series[:: max(1, DAYS // 6)]:
        day = date.fromisoformat(figures.period["from"])
        one = kpi_report(store, Directory(), MANAGER, first=day, last=day, by=None, today=last)
        assert not isinstance(one, list) and figures.group == {"day": day.isoformat()}
        assert figures.kpis == {k: v for k, v in one.kpis.items() if k != "backlog"}
    # And the backlog is the tickets still active, by status
    active = [t for t in sim.tickets if t.status not in ("resolved", "cancelled")]
    assert total.kpis["backlog"]["total"] == len(active)
    assert total.kpis["backlog"]["by_status"]["open"] == sum(t.status == "open" for t in active)


def test_a_record_counted_twice_is_absorbed(kpi_env: dict[str, Any]) -> None:
    # Given one ticket opened
    sim = Simulation(seed=1)
    sim.month(1)
    aggregator = load_handler("kpi_aggregator", "handler_kpi_twice")
    opened = sim.records[0]
    # When the stream delivers its first record three times
    for _ in range(3):
        aggregator.handler({"Records": [opened]}, FakeContext())
    # Then it is counted once
    store = DynamoKpiStore(table=kpi_env["table"], defs=load_kpi_definitions(), ddb=kpi_env["ddb"])
    day = sim.tickets[0].opened_at.date()
    rows = store.counters("all#all", day, day)
    assert [r["opened"] for r in rows] == [1]


def test_a_repeat_takes_back_the_first_time_fix(kpi_env: dict[str, Any]) -> None:
    # Given a visit verified (first-time fix) and then, in a later record, marked repeated
    sim = Simulation(seed=2)
    t = Truth("T-1", "eu-west", "P2", None, MONTH_START, MONTH_START, MONTH_START)
    start = MONTH_START + timedelta(hours=3)
    sim.visit(t, "B-1", "E-ada", start, "verified")
    sim.visit(t, "B-1", "E-ada", start, "repeated")
    aggregator = load_handler("kpi_aggregator", "handler_kpi_repeat")
    store = DynamoKpiStore(table=kpi_env["table"], defs=load_kpi_definitions(), ddb=kpi_env["ddb"])
    day = start.date()
    # When the verified record is counted first
    aggregator.handler({"Records": sim.records[:1]}, FakeContext())
    fixed_then = store.counters("engineer#E-ada", day, day)[0]["visits_fixed"]
    # and the repeat arrives after it, then the verified record is redelivered
    aggregator.handler({"Records": [sim.records[1], sim.records[0]]}, FakeContext())
    # Then the fix was counted, and then taken back (compensation), not counted again
    row = store.counters("engineer#E-ada", day, day)[0]
    assert fixed_then == 1
    assert (row["visits_fixed"], row["visits_verdict"], row["visits_repeated"]) == (0, 1, 1)


def test_range_beyond_the_limit_is_refused() -> None:
    from aftercare.domain.kpi_report import InvalidRange, period_of

    # Given a range of 93 days, When it is asked, Then it is refused as invalid_range
    with pytest.raises(InvalidRange):
        period_of(date(2026, 1, 1), date(2026, 4, 3), date(2026, 5, 1))
    # And a reversed range too
    with pytest.raises(InvalidRange):
        period_of(date(2026, 2, 1), date(2026, 1, 1), date(2026, 5, 1))
    assert period_of(None, date(2026, 1, 30), date(2026, 5, 1)) == (
        date(2026, 1, 1),
        date(2026, 1, 30),
    )


def test_the_demo_summary_shows_the_headline_kpis(kpi_env: dict[str, Any]) -> None:
    # Given a ticket opened an hour ago that left `open` after 30 minutes, counted
    create_template_tables(kpi_env["ddb"], ["FieldTable"])
    sim = Simulation(seed=3)
    now = datetime.now(UTC)
    opened = now - timedelta(hours=1)
    t = Truth(
        "T-now", "eu-west", "P1", None, opened, opened + timedelta(hours=4), opened + timedelta(2)
    )
    sim.meta(t, 1, opened)
    t.status = "diagnosing"
    sim.meta(t, 2, opened + timedelta(minutes=30))
    aggregator = load_handler("kpi_aggregator", "handler_kpi_summary")
    aggregator.handler({"Records": sim.records}, FakeContext())
    # When the demo summarises the stack
    resources = {"KpiTable": kpi_env["table"], "FieldTable": "aftercare-field-test"}
    summary = kpi_summary(Target(resources=resources, region="us-east-1"))
    # Then its KPI block has the headline figures and the backlog
    assert (summary["opened"], summary["response_median_min"]) == (1, 30)
    assert summary["sla_response_compliance"] == 1.0 and summary["csat"] is None
    assert summary["backlog"]["diagnosing"] == 1
