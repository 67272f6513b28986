"""The engineers' job flow and device-verified closure, end to end on one local stack.

Real Cognito tokens (eng-ada is E-ada, eng-linus E-linus), the local API gateway routing to
FieldJobsFunction, the calendar on FieldTable, device agents over the stack's Mosquitto
answering the verification self-test, the diagnostics rule, queue, functions and sweeper (every
second here; a visit's verification deadline is 6 s).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aftercare.adapters.calendar import DynamoCalendar
from aftercare.models.field import Booking, BookingSource, BookingStatus

from infra.cli import main as cli_main
from infra.local.stack import LocalStack
from tests.e2e.conftest import wait_for
from tests.e2e.test_diagnostics_api import NO_AUTO, Api, Env, ticket_for

ROOT = Path(__file__).resolve().parents[2]
VERIFY_S = 6


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    workdir = tmp_path_factory.mktemp("visits")
    stack = LocalStack(
        ROOT,
        workdir / "state",
        param_overrides={"VisitVerifyTimeoutSeconds": str(VERIFY_S)},
        schedule_seconds={"DiagnosticsSweeperFunction": 1, "EscalationSweeperFunction": 1},
    )
    try:
        environment = Env(stack.start(), workdir / "state", workdir / "outbox")
        yield environment
        for agent in environment.agents:
            agent.stop(drain_timeout=2)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def ada(env: Env) -> Api:
    return env.api("eng-ada")


class Visit:
    """A device with a fault, its ticket, and a booking for it on E-ada's calendar today."""

    def __init__(self, env: Env, api: Api, thing: str, slot: int) -> None:
        self.env = env
        self.agent = env.agent(thing)
        self.agent.raise_fault(NO_AUTO)
        row = ticket_for(api, thing, NO_AUTO)
        self.ticket = api.get(f"/tickets/{row['ticket_id']}")
        calendar = DynamoCalendar(
            table=env.state["resources"]["FieldTable"],
            tickets_table=env.state["resources"]["TicketsTable"],
            ddb=env.ddb,
        )
        now = datetime.now(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day + timedelta(minutes=15 * slot)  # distinct 15-minute cells per test
        self.booking = Booking(
            booking_id=f"B-{self.ticket['ticket_id']}",
            ticket_id=self.ticket["ticket_id"],
            engineer_id="E-ada",
            customer_id=self.ticket["customer_id"],
            thing=thing,
            region=self.ticket["region"],
            start=start,
            end=start + timedelta(minutes=15),
            time_zone="UTC",
            status=BookingStatus.SCHEDULED,
            source=BookingSource.DISPATCHER,
            created_at=now,
            updated_at=now,
            created_by="user:mgr-grace",
        )
        calendar.book(self.booking, now)
        self.version = 1

    def report(self, api: Api, status: str, **body: Any) -> tuple[int, Any]:
        path = f"/bookings/{self.booking.booking_id}/status"
        code, answer = api.call(
            "POST", path, {"status": status, "expected_version": self.version} | body
        )
        if code == 200:
            self.version = answer["booking"]["version"]
        return code, answer

    def detail(self) -> Any:
        return self.env_tickets().get_ticket(self.ticket["ticket_id"])

    def env_tickets(self):  # type: ignore[no-untyped-def]
        from aftercare.adapters.dynamodb import DynamoTicketStore

        resources = self.env.state["resources"]
        return DynamoTicketStore(
            tickets_table=resources["TicketsTable"],
            devices_table=resources["DevicesTable"],
            customers_table=resources["CustomersTable"],
            inventory_table=resources["InventoryTable"],
            ddb=self.env.ddb,
        )


def ticket_in(api: Api, ticket_id: str, status: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        ticket = api.get(f"/tickets/{ticket_id}")
        return ticket if ticket["status"] == status else None

    return wait_for(probe, timeout=VERIFY_S + 30, interval=0.3, what=f"{ticket_id} {status}")


def test_the_engineer_sees_the_job_and_a_fix_the_device_confirms_resolves_the_ticket(env, ada):
    # Given a booked visit on Ada's calendar today
    visit = Visit(env, ada, "rt-x-0101", slot=4)
    # When she lists her jobs
    jobs = ada.get("/me/jobs")
    # Then the visit is there with its ticket's fault
    job = next(j for j in jobs if j["booking_id"] == visit.booking.booking_id)
    assert job["fault_code"] == NO_AUTO and job["status"] == "scheduled" and job["version"] == 1
    # When she sets off, arrives, repairs the device and completes
    assert visit.report(ada, "en_route")[0] == 200
    assert visit.report(ada, "on_site")[0] == 200
    assert ada.get(f"/tickets/{visit.ticket['ticket_id']}")["status"] == "in_repair"
    visit.agent.state.clear([NO_AUTO])
    code, done = visit.report(ada, "completed", notes="flash module replaced")
    assert code == 200 and done["verification_request"]
    # Then the device's self-test confirms it and the ticket resolves on site, verified
    ticket = ticket_in(ada, visit.ticket["ticket_id"], "resolved")
    assert ticket["resolution"] == "on_site"
    (record,) = visit.detail().visits
    assert record.verification == "verified" and record.first_time_fix
    kinds = [e.kind for e in visit.detail().timeline]
    assert {"visit_en_route", "visit_on_site", "visit_completed", "visit_eta"} <= set(kinds)
    # And the customer was told about the booking and that the engineer was on the way
    for kind in ("booking_confirmed", "engineer_en_route"):
        wait_for(lambda kind=kind: told(env, visit.ticket["ticket_id"], kind), what=kind)


def told(env: Env, ticket_id: str, kind: str) -> dict[str, Any] | None:
    """The notifier's once-per-event record of `kind` for the ticket, once it was sent (visit
    messages are keyed per visit: `EVENT#<kind>#<booking>@<start>`)."""
    items = env.ddb.query(
        TableName=env.state["resources"]["NotificationsTable"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={
            ":pk": {"S": f"TICKET#{ticket_id}"},
            ":sk": {"S": f"EVENT#{kind}"},
        },
    ).get("Items", [])
    told = [i for i in items if i["state"]["S"] in ("sent", "digested", "deferred")]
    return told[0] if told else None


def test_a_stale_version_and_someone_elses_job_are_refused(env, ada):
    visit = Visit(env, ada, "rt-x-0105", slot=8)
    assert visit.report(ada, "en_route")[0] == 200
    # A change sent with the version read before that one
    code, body = ada.call(
        "POST",
        f"/bookings/{visit.booking.booking_id}/status",
        {"status": "on_site", "expected_version": 1},
    )
    assert (code, body["reason"]) == (409, "stale_version")
    # Another engineer's report on Ada's job
    code, body = visit.report(env.api("eng-linus"), "on_site")
    assert (code, body["reason"]) == (403, "forbidden")
    # A jump the booking's state machine does not allow
    code, body = visit.report(ada, "completed")
    assert (code, body["reason"]) == (409, "invalid_transition")


def test_a_fix_the_device_does_not_confirm_goes_back_to_dispatch(env, ada):
    visit = Visit(env, ada, "rt-x-0109", slot=12)
    for status in ("en_route", "on_site"):
        assert visit.report(ada, status)[0] == 200
    # When she completes but the fault is still active on the device
    assert visit.report(ada, "completed")[0] == 200
    # Then the ticket is open again, flagged for another visit, and the visit failed
    ticket = ticket_in(ada, visit.ticket["ticket_id"], "open")
    assert "needs_onsite_dispatch" in ticket["flags"]
    (record,) = visit.detail().visits
    assert record.verification == "failed" and not record.first_time_fix


def test_cannot_complete_reopens_dispatch_with_the_reason(env, ada):
    visit = Visit(env, ada, "rt-x-0113", slot=16)
    assert visit.report(ada, "en_route")[0] == 200
    code, _ = visit.report(ada, "cannot_complete", reason="customer absent")
    assert code == 200
    ticket = ada.get(f"/tickets/{visit.ticket['ticket_id']}")
    assert ticket["status"] == "open" and "needs_onsite_dispatch" in ticket["flags"]
    assert "customer absent" in ticket["dispatch_reason"]


def test_a_device_that_stays_offline_resolves_unverified(env, ada):
    visit = Visit(env, ada, "rt-x-0117", slot=20)
    for status in ("en_route", "on_site"):
        assert visit.report(ada, status)[0] == 200
    visit.agent.go_offline()
    assert visit.report(ada, "completed")[0] == 200
    ticket = ticket_in(ada, visit.ticket["ticket_id"], "resolved")
    assert ticket["resolution"] == "on_site"
    (record,) = visit.detail().visits
    assert record.verification == "unverified"


def test_the_engineer_works_a_job_from_the_cli(env, ada, capsys):
    visit = Visit(env, ada, "rt-x-0121", slot=24)
    state_dir = ["--state-dir", str(env.state_dir)]
    assert cli_main(["login", "--user", "eng-ada", *state_dir]) == 0
    capsys.readouterr()
    # When she lists her jobs and reports one as on the way
    assert cli_main(["jobs", "list", "--json", *state_dir]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert visit.booking.booking_id in [r["booking_id"] for r in rows]
    assert cli_main(["jobs", "set-status", visit.booking.booking_id, "en_route", *state_dir]) == 0
    # Then the booking moved (the CLI read the version itself)
    job = next(j for j in ada.get("/me/jobs") if j["booking_id"] == visit.booking.booking_id)
    assert job["status"] == "en_route" and job["version"] == 2
    # And a reason-less cannot_complete is refused with the API's reason
    assert (
        cli_main(["jobs", "set-status", visit.booking.booking_id, "cannot_complete", *state_dir])
        == 1
    )
    assert "validation_error" in capsys.readouterr().err
    (env.state_dir / "session.json").unlink()


def test_a_ticket_nobody_takes_up_is_escalated_once_by_the_sweeper(env, ada):
    # Given a ticket whose response deadline passed unmet (opened with its escalation tracker)
    # while dispatch waited for the customer to pick a slot (a state the Dispatcher leaves)
    from aftercare.adapters.dynamodb import DynamoTicketStore
    from aftercare.domain.escalation import first_tracker, load_escalation
    from aftercare.domain.ports import NewTicketPlan
    from aftercare.models.tickets import Occurrence, TicketFlag

    from tests.fakes.diagnostics import make_ticket

    now = datetime.now(UTC)
    ticket = make_ticket("SLA-LATE", thing="rt-x-0125").model_copy(
        update={
            "opened_at": now - timedelta(hours=5),
            "sla_response_due": now - timedelta(hours=1),
            "sla_resolution_due": now + timedelta(hours=19),
            "flags": [TicketFlag.NEEDS_ONSITE_DISPATCH],
            "dispatch_state": "awaiting_customer",
        }
    )
    resources = env.state["resources"]
    store = DynamoTicketStore(
        tickets_table=resources["TicketsTable"],
        devices_table=resources["DevicesTable"],
        customers_table=resources["CustomersTable"],
        inventory_table=resources["InventoryTable"],
        ddb=env.ddb,
    )
    occurrence = Occurrence(
        fault_id="f-sla-late", occurred_at=now, received_at=now, severity="major", firmware="1"
    )
    store.open_ticket(
        NewTicketPlan(
            ticket=ticket,
            occurrence=occurrence,
            timeline=[],
            dedup_expires_at=0,
            escalation=first_tracker(ticket, load_escalation()),
        )
    )

    # When the stack's EscalationSweeper runs (every second here)
    def escalated() -> list[str] | None:
        kinds = [e.kind for e in store.get_ticket(ticket.ticket_id).timeline]
        return kinds if kinds.count("sla_escalated") >= 3 else None

    wait_for(escalated, timeout=30, what="three response escalations")
    # Then the three response steps acted once each, and the flags say so
    detail = store.get_ticket(ticket.ticket_id)
    assert [e.kind for e in detail.timeline].count("sla_escalated") == 3
    assert {"sla_breached", "partners_allowed", "needs_onsite_dispatch"} <= set(detail.ticket.flags)
    redispatch = next(
        e for e in detail.timeline if e.detail.get("action") == "redispatch_with_partners"
    )
    assert redispatch.detail["dispatch_state"] == "awaiting_customer"

    # And the redispatch step sent it back to the stack's Dispatcher, which decided again
    # (booked it, escalated tickets being booked by the policy, or found nobody in time)
    def decided() -> list[str] | None:
        current = store.get_ticket(ticket.ticket_id)
        if current.ticket.dispatch_state in (None, "wanted", "awaiting_customer"):
            return None
        return [e.kind for e in current.timeline]

    kinds = wait_for(decided, timeout=30, what="the Dispatcher to run again")
    assert {"dispatch_booked", "dispatch_no_candidate", "dispatch_awaiting_parts"} & set(kinds)
    bookings = [
        b
        for b in DynamoCalendar(
            table=resources["FieldTable"], tickets_table=resources["TicketsTable"], ddb=env.ddb
        ).bookings_for_ticket(ticket.ticket_id)
        if b.status is BookingStatus.SCHEDULED
    ]
    assert len(bookings) == (1 if "dispatch_booked" in kinds else 0)
