"""The job flow on the real ticket and diagnostics adapters (template tables on the serial moto
server): the visit record, flags and reason land with the ticket change, and the device's
verification answer (or its silence) settles ticket and visit in one transaction."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.diagnostics import DynamoDiagnosticsStore
from aftercare.adapters.ticket_items import ticket_item
from aftercare.domain.diagnostics import sweep_timeouts
from aftercare.domain.diagnostics_plans import plan_completion
from aftercare.domain.ports import NewTicketPlan
from aftercare.domain.rules import load_catalog
from aftercare.domain.visits import VisitDeps, set_job_status
from aftercare.models.field import VerificationOutcome
from aftercare.models.payloads import DiagnosticsResult, DiagnosticStatus
from aftercare.models.tickets import Occurrence, Resolution, TicketFlag, TicketStatus, TimelineEntry
from aftercare.models.visits import SetJobStatus, VisitOutcome

from infra.local.provision import ProvisionResult
from tests.fakes.diagnostics import NOW, FakePublisher, make_ticket
from tests.fakes.tables import ticket_store
from tests.fakes.visit_calendar import FakeCalendar
from tests.unit.test_visits import ENGINEER, booking_for

REGION = "us-east-1"


class Visit:
    def __init__(self, provisioned: ProvisionResult, moto_url: str, code: str) -> None:
        self.ddb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
        table = provisioned.resources["TicketsTable"]
        self.tickets = ticket_store(provisioned.resources, self.ddb)
        self.diagnostics = DynamoDiagnosticsStore(
            tickets_table=table,
            inventory_table=provisioned.resources["InventoryTable"],
            ddb=self.ddb,
        )
        ticket = make_ticket(
            code, thing=f"ac-{code.lower()}", status=TicketStatus.SCHEDULED, routine="self_test"
        )
        self.ddb.put_item(TableName=table, Item=to_item(ticket_item(ticket)))
        self.ticket_id = ticket.ticket_id
        self.booking = booking_for(ticket)
        self.calendar = FakeCalendar(self.booking)
        self.publisher = FakePublisher()
        self.deps = VisitDeps(
            bookings=self.calendar,
            calendar=self.calendar,
            tickets=self.tickets,
            diagnostics=self.diagnostics,
            publisher=self.publisher,
            verify_timeout=timedelta(minutes=2),
        )

    def report(self, status: str, **body: object):
        version = self.calendar.bookings[self.booking.booking_id].version
        request = SetJobStatus.model_validate(
            {"status": status, "expected_version": version} | body
        )
        return set_job_status(self.deps, ENGINEER, self.booking.booking_id, request, NOW)

    def detail(self):
        return self.tickets.get_ticket(self.ticket_id)


@pytest.fixture
def visit(request, provisioned: ProvisionResult, moto_url: str) -> Visit:
    return Visit(provisioned, moto_url, request.param)


@pytest.mark.parametrize("visit", ["VISIT-OK"], indirect=True)
def test_a_verified_fix_resolves_on_site_and_records_the_visit(visit: Visit) -> None:
    # Given an engineer who went, arrived and completed
    visit.report("en_route")
    visit.report("on_site")
    request_id = visit.report("completed", notes="board reseated").verification_request
    assert visit.detail().ticket.status is TicketStatus.IN_REPAIR
    # When the device answers the self-test without the fault
    context = visit.diagnostics.load(visit.ticket_id, str(request_id))
    assert context.record is not None and context.ticket is not None
    result = DiagnosticsResult(
        request_id=str(request_id),
        status=DiagnosticStatus.PASSED,
        findings={"active_faults": []},
        remedied=False,
        completed_at=NOW,
    )
    visit.diagnostics.complete(
        plan_completion(
            context.ticket, context.record, result, NOW, load_catalog(), rev=context.rev
        )
    )
    # Then the ticket is resolved on site and the visit is a verified first-time fix
    detail = visit.detail()
    assert detail.ticket.status is TicketStatus.RESOLVED
    assert detail.ticket.resolution is Resolution.ON_SITE
    (record,) = detail.visits
    assert record.verification is VerificationOutcome.VERIFIED and record.first_time_fix


@pytest.mark.parametrize("visit", ["VISIT-SILENT"], indirect=True)
def test_a_silent_device_resolves_unverified_after_the_deadline(visit: Visit) -> None:
    visit.report("en_route")
    visit.report("on_site")
    visit.report("completed")
    # When the sweeper runs past the verification's deadline
    swept = sweep_timeouts(visit.diagnostics, NOW + timedelta(minutes=10))
    # Then the ticket resolved on the engineer's word, marked unverified
    detail = visit.detail()
    assert swept >= 1 and detail.ticket.status is TicketStatus.RESOLVED
    (record,) = detail.visits
    assert record.verification is VerificationOutcome.UNVERIFIED


@pytest.mark.parametrize("visit", ["VISIT-ABSENT"], indirect=True)
def test_cannot_complete_stores_the_flag_reason_and_visit(visit: Visit) -> None:
    visit.report("en_route")
    visit.report("cannot_complete", reason="customer absent")
    detail = visit.detail()
    assert detail.ticket.status is TicketStatus.OPEN
    assert TicketFlag.NEEDS_ONSITE_DISPATCH in detail.ticket.flags
    assert "customer absent" in str(detail.ticket.dispatch_reason)
    (record,) = detail.visits
    assert record.outcome is VisitOutcome.CANNOT_COMPLETE and not record.first_time_fix


@pytest.mark.parametrize("visit", ["VISIT-REPEAT"], indirect=True)
def test_a_repeat_within_the_window_is_recorded_against_the_fixing_visit(visit: Visit) -> None:
    # Given a visit whose fix the device verified
    test_a_verified_fix_resolves_on_site_and_records_the_visit(visit)
    earlier = visit.detail().ticket
    context = visit.tickets.load_intake_context(earlier.thing, earlier.fault_code, "f-again")
    assert context.last_resolution is not None
    assert context.last_resolution.visit_id == visit.booking.booking_id
    # When intake opens a repeat ticket of the same code (as it plans one)
    repeat = make_ticket(earlier.fault_code, thing=earlier.thing).model_copy(
        update={"ticket_id": "T-REPEATREPEAT", "repeat_of": earlier.ticket_id}
    )
    visit.tickets.open_ticket(
        NewTicketPlan(
            ticket=repeat,
            occurrence=Occurrence(
                fault_id="f-again",
                occurred_at=NOW,
                received_at=NOW,
                severity=repeat.severity,
                firmware="1.0.0",
            ),
            timeline=[],
            dedup_expires_at=0,
            repeat_entry=TimelineEntry(at=NOW, kind="repeat_reported", actor="fault-intake"),
            repeat_visit=context.last_resolution.visit_id,
        )
    )
    # Then the visit no longer counts as a first-time fix, and names the repeat
    (record,) = visit.detail().visits
    assert record.outcome is VisitOutcome.REPEATED and not record.first_time_fix
    assert record.repeat_ticket == "T-REPEATREPEAT"


@pytest.mark.parametrize("visit", ["VISIT-JOBS"], indirect=True)
def test_a_days_jobs_read_their_tickets_in_one_batch(visit: Visit) -> None:
    from aftercare.domain.visits import jobs_today

    # Given the booking and one for a ticket that does not exist
    ghost = visit.booking.model_copy(update={"booking_id": "B-ghost", "ticket_id": "T-NOSUCH"})
    visit.calendar.bookings[ghost.booking_id] = ghost
    # When the engineer lists the day
    jobs = jobs_today(visit.deps, ENGINEER, NOW.date())
    # Then both are there, the real one with its ticket's fault
    by_id = {j.booking_id: j for j in jobs}
    assert by_id[visit.booking.booking_id].fault_code == "VISIT-JOBS"
    assert by_id["B-ghost"].fault_code is None
