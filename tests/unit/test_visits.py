"""The job flow: an engineer moves a booking, the ticket follows, a completion is verified by
the device (fakes for the calendar, the ticket store, diagnostics and the publisher)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.diagnostics_plans import plan_completion, plan_timeout
from aftercare.domain.parts import StockLevel
from aftercare.domain.ports import BookingConflict
from aftercare.domain.rules import load_catalog
from aftercare.domain.tickets import Ticket
from aftercare.domain.visits import (
    InvalidBookingTransition,
    StaleBooking,
    VisitDeps,
    jobs_today,
    set_job_status,
)
from aftercare.models.diagnostics import Outcome, Purpose
from aftercare.models.field import Booking, BookingSource, BookingStatus, VerificationOutcome
from aftercare.models.parts import LineStatus, PartsLine
from aftercare.models.payloads import DiagnosticsResult, DiagnosticStatus
from aftercare.models.tickets import Resolution, TicketFlag, TicketStatus
from aftercare.models.visits import SetJobStatus, VisitOutcome

from tests.fakes.diagnostics import NOW, FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.stores import FakeTicketStore
from tests.fakes.visit_calendar import FakeCalendar

ENGINEER = Caller(
    subject="s-ada", username="eng-ada", groups=frozenset({"engineers"}), engineer_id="E-ada"
)
OTHER = Caller(
    subject="s-lin", username="eng-linus", groups=frozenset({"engineers"}), engineer_id="E-linus"
)
MANAGER = Caller(subject="s-gr", username="mgr-grace", groups=frozenset({"managers"}))


def held(sku: str, qty: int = 1) -> PartsLine:
    return PartsLine(
        sku=sku,
        name_en=sku,
        name_zh=sku,
        qty=qty,
        status=LineStatus.HELD,
        warehouse="WH-AMS",
        reservation_id=f"R-{sku}",
        unit_price=10,
        currency="EUR",
        reserved_at=NOW,
    )


def booking_for(ticket: Ticket, start_hour: int = 9, **extra: object) -> Booking:
    start = NOW.replace(hour=start_hour)
    fields: dict[str, object] = {
        "booking_id": f"B-{ticket.ticket_id}-{start_hour}",
        "ticket_id": ticket.ticket_id,
        "engineer_id": "E-ada",
        "customer_id": ticket.customer_id,
        "thing": ticket.thing,
        "region": ticket.region,
        "start": start,
        "end": start + timedelta(hours=2),
        "time_zone": "Europe/Amsterdam",
        "status": BookingStatus.SCHEDULED,
        "source": BookingSource.CUSTOMER,
        "created_at": NOW,
        "updated_at": NOW,
        "created_by": "user:cust-0001",
    }
    return Booking.model_validate(fields | extra)


class Field:
    """A ticket with a booking, and everything a visit touches."""

    def __init__(self, ticket: Ticket) -> None:
        self.tickets = FakeTicketStore()
        self.tickets.tickets[ticket.ticket_id] = ticket
        self.tickets.timeline[ticket.ticket_id] = []
        self.tickets.occurrences[ticket.ticket_id] = []
        for line in ticket.parts:
            self.tickets.reservations[line.reservation_id] = line
        self.diagnostics = FakeDiagnosticsStore()
        self.diagnostics.tickets = self.tickets.tickets  # one ticket table, as in DynamoDB
        self.publisher = FakePublisher()
        self.booking = booking_for(ticket)
        self.calendar = FakeCalendar(self.booking)
        self.deps = VisitDeps(
            bookings=self.calendar,
            calendar=self.calendar,
            tickets=self.tickets,
            diagnostics=self.diagnostics,
            publisher=self.publisher,
            verify_timeout=timedelta(minutes=2),
        )
        self.ticket_id = ticket.ticket_id

    def report(self, status: str, caller: Caller = ENGINEER, **body: object):
        version = self.calendar.bookings[self.booking.booking_id].version
        request = SetJobStatus.model_validate(
            {"status": status, "expected_version": version} | body
        )
        return set_job_status(self.deps, caller, self.booking.booking_id, request, NOW)

    @property
    def ticket(self) -> Ticket:
        return self.tickets.tickets[self.ticket_id]

    def visit(self):
        return self.tickets.visits[self.ticket_id][self.booking.booking_id]


@pytest.fixture
def field() -> Field:
    ticket = make_ticket(
        "PSU-OVERVOLT",
        status=TicketStatus.SCHEDULED,
        routine="self_test",
        parts=[held("PSU-240-A"), held("FUSE-10A")],
    )
    f = Field(ticket)
    for line in ticket.parts:
        key = (line.sku, str(line.warehouse))
        f.tickets.stock[key] = StockLevel(
            sku=line.sku, warehouse=str(line.warehouse), on_hand=5, held=line.qty, reorder_point=1
        )
    return f


def test_engineer_sees_only_their_jobs_today_in_start_order(field: Field) -> None:
    # Given three bookings today, two of them Ada's, booked out of order
    later = booking_for(field.ticket, 14)
    theirs = booking_for(field.ticket, 11, engineer_id="E-linus")
    field.calendar.bookings |= {later.booking_id: later, theirs.booking_id: theirs}
    # When Ada lists her jobs
    jobs = jobs_today(field.deps, ENGINEER, NOW.date())
    # Then she sees her two, earliest first, with the ticket's fault
    assert [j.booking_id for j in jobs] == [field.booking.booking_id, later.booking_id]
    assert jobs[0].fault_code == "PSU-OVERVOLT" and jobs[0].ticket_status == "scheduled"


def test_staff_without_an_engineer_id_have_no_jobs(field: Field) -> None:
    with pytest.raises(Forbidden):
        jobs_today(field.deps, MANAGER, NOW.date())
    assert jobs_today(field.deps, MANAGER, NOW.date(), engineer_id="E-ada")


def test_on_the_way_then_on_site_moves_the_ticket_into_repair(field: Field) -> None:
    # When the engineer sets off and arrives
    field.report("en_route")
    result = field.report("on_site")
    # Then the booking followed the transitions and the ticket is in repair
    assert result.booking.status is BookingStatus.ON_SITE and result.booking.version == 3
    assert field.ticket.status is TicketStatus.IN_REPAIR
    eta, entry = field.tickets.timeline[field.ticket_id]
    assert eta.kind == "visit_eta" and field.ticket.visit is not None
    assert entry.kind == "status_changed" and entry.detail["to"] == "in_repair"
    assert field.booking.booking_id in entry.detail["reason"]


def test_a_stale_version_is_refused_and_changes_nothing(field: Field) -> None:
    field.report("en_route")
    # When someone reports with the version they read before that change
    body = SetJobStatus(status="on_site", expected_version=1)
    with pytest.raises(StaleBooking):
        set_job_status(field.deps, ENGINEER, field.booking.booking_id, body, NOW)
    # Then the booking is where it was
    assert field.calendar.bookings[field.booking.booking_id].status is BookingStatus.EN_ROUTE


def test_transitions_outside_the_booking_state_machine_are_refused(field: Field) -> None:
    with pytest.raises(InvalidBookingTransition):
        field.report("completed")  # straight from scheduled
    assert field.calendar.writes == 0


def test_another_engineers_job_is_forbidden(field: Field) -> None:
    with pytest.raises(Forbidden):
        field.report("en_route", caller=OTHER)


def test_a_retried_change_lands_on_the_ticket_once(field: Field) -> None:
    # Given the calendar took "on site" but the ticket side was lost
    field.report("en_route")
    field.calendar.set_status(
        field.calendar.bookings[field.booking.booking_id], BookingStatus.ON_SITE, 2
    )
    assert field.ticket.status is TicketStatus.SCHEDULED
    # When the engineer retries with the version they read, twice
    body = SetJobStatus(status="on_site", expected_version=2)
    set_job_status(field.deps, ENGINEER, field.booking.booking_id, body, NOW)
    set_job_status(field.deps, ENGINEER, field.booking.booking_id, body, NOW)
    # Then the ticket moved once and the booking moved once
    kinds = [e.kind for e in field.tickets.timeline[field.ticket_id]]
    assert kinds == ["visit_eta", "status_changed"]
    assert field.ticket.status is TicketStatus.IN_REPAIR
    assert field.calendar.bookings[field.booking.booking_id].version == 3


def test_completion_consumes_used_parts_releases_the_rest_and_asks_the_device(
    field: Field,
) -> None:
    field.report("en_route")
    field.report("on_site")
    # When the engineer completes having used only the PSU
    result = field.report("completed", parts_used=["PSU-240-A"], notes="PSU swapped")
    # Then the PSU is consumed, the fuse back in stock, the ticket still in repair
    statuses = {line.sku: line.status for line in field.ticket.parts}
    assert statuses == {"PSU-240-A": LineStatus.CONSUMED, "FUSE-10A": LineStatus.RELEASED}
    assert field.tickets.held_units() == 0
    assert field.ticket.status is TicketStatus.IN_REPAIR
    # And a verification self-test about the fault went to the device
    thing, request = field.publisher.published[-1]
    assert thing == field.ticket.thing and request.routine == "self_test"
    assert request.params == {"code": "PSU-OVERVOLT"}
    assert result.verification_request == request.request_id
    record = field.diagnostics.records[request.request_id]
    assert record.purpose is Purpose.VISIT_VERIFY and record.visit is not None
    assert field.visit().verification is VerificationOutcome.PENDING


def test_cannot_complete_reopens_dispatch_with_the_reason(field: Field) -> None:
    field.report("en_route")
    field.report("on_site")
    # When the engineer cannot complete
    field.report("cannot_complete", reason="wrong part on the van")
    # Then the ticket is open again, flagged for a visit with the reason, parts still held
    ticket = field.ticket
    assert ticket.status is TicketStatus.OPEN
    assert TicketFlag.NEEDS_ONSITE_DISPATCH in ticket.flags
    assert ticket.dispatch_reason and "wrong part on the van" in ticket.dispatch_reason
    assert field.tickets.held_units() == 2
    # And the visit counts against first-time fix
    assert field.visit().outcome is VisitOutcome.CANNOT_COMPLETE
    assert not field.visit().first_time_fix
    assert field.publisher.published == []


def test_cannot_complete_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        SetJobStatus(status="cannot_complete", expected_version=1)


def test_the_calendar_refusing_a_concurrent_change_is_a_conflict(field: Field) -> None:
    class Racing(FakeCalendar):
        def set_status(self, booking, status, expected_version, **changes):  # type: ignore[no-untyped-def]
            raise BookingConflict("moved meanwhile")

    racing = Racing(field.booking)
    deps = VisitDeps(**{**field.deps.__dict__, "calendar": racing})
    with pytest.raises(BookingConflict):
        set_job_status(
            deps,
            ENGINEER,
            field.booking.booking_id,
            SetJobStatus(status="en_route", expected_version=1),
            NOW,
        )
    assert field.tickets.timeline[field.ticket_id] == []


# --------------------------------------------------------------------------- verification


def completed(field: Field) -> str:
    field.report("en_route")
    field.report("on_site")
    return str(field.report("completed").verification_request)


def answer(field: Field, request_id: str, status: str, active: list[str]):
    record = field.diagnostics.records[request_id]
    result = DiagnosticsResult(
        request_id=request_id,
        status=DiagnosticStatus(status),
        findings={"active_faults": active},
        remedied=False,
        completed_at=NOW,
    )
    return plan_completion(field.ticket, record, result, NOW, load_catalog(), rev=0)


def test_device_confirming_the_fault_is_gone_resolves_on_site_verified(field: Field) -> None:
    request_id = completed(field)
    plan = answer(field, request_id, "passed", [])
    assert plan.record.outcome is Outcome.VISIT_VERIFIED
    change = plan.status_change
    assert change is not None and change.target is TicketStatus.RESOLVED
    assert change.resolution is Resolution.ON_SITE
    assert change.visit is not None and change.visit.verification is VerificationOutcome.VERIFIED
    assert change.visit.first_time_fix


def test_device_still_reporting_the_fault_reopens_dispatch(field: Field) -> None:
    request_id = completed(field)
    plan = answer(field, request_id, "failed", ["PSU-OVERVOLT"])
    change = plan.status_change
    assert plan.record.outcome is Outcome.VISIT_FIX_FAILED
    assert change is not None and change.target is TicketStatus.OPEN
    assert change.flags is not None and TicketFlag.NEEDS_ONSITE_DISPATCH in change.flags
    assert change.visit is not None and change.visit.outcome is VisitOutcome.FAILED
    assert not change.visit.first_time_fix


def test_a_silent_device_resolves_on_the_engineers_word_unverified(field: Field) -> None:
    request_id = completed(field)
    record = field.diagnostics.records[request_id]
    plan = plan_timeout(field.ticket, record, record.expires_at + timedelta(minutes=1), rev=0)
    change = plan.status_change
    assert plan.record.outcome is Outcome.VISIT_UNVERIFIED
    assert change is not None and change.target is TicketStatus.RESOLVED
    assert change.resolution is Resolution.ON_SITE
    assert change.visit is not None and change.visit.verification is VerificationOutcome.UNVERIFIED
    assert plan.ticket_patch is None  # not flagged for another visit
