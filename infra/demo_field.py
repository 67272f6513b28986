"""The demo's field phase, through the stack's real field-service paths: engineers ask for visits
(`POST /tickets/{id}/dispatch`), the Dispatcher (tickets stream) books P1/VIP tickets itself and
leaves the others to their customers, who pick a slot (`GET /tickets/{id}/slots`,
`POST /tickets/{id}/booking`); the booked engineers work through their jobs
(`POST /bookings/{id}/status`), each device verifies the fix with its self-test over MQTT; one
visit cannot complete and is dispatched again; one device still reports its fault. Then the
field figures for the summary.

The thin region (`THIN_REGION`: one in-house engineer, two partner contracts, partners first in
`data/dispatch.yaml`) gets its share of the tickets, so partner share is measured, not staged.
Double bookings are counted, not assumed: overlaps of non-cancelled bookings per engineer on the
board of every day the demo's visits fall on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.field_items import local_day
from aftercare.domain.ports.dispatch import DispatchState
from aftercare.domain.tickets import Ticket
from aftercare.models.field import LIVE_BOOKING_STATUSES, Booking, BookingSource
from aftercare.models.tickets import TicketStatus
from botocore.exceptions import ClientError

from devices.agent import DeviceAgent
from devices.config import AgentConfig, IngestRules, credential_files
from infra.cli_core import CliError
from infra.cli_session import ApiClient, authenticate
from infra.local.broker_auth import issue_device_credentials
from infra.local.provision_api import LOCAL_PASSWORD, LocalUser, seed_users
from infra.stores import store_of
from infra.target import Target

THIN_REGION = "ap-east"
REQUESTER = "eng-ada"  # an engineer says the visits are needed
REASON = "demo: the device needs a technician on site"
DECISION_TIMEOUT_S = 60.0
T = TypeVar("T")


def _poll(probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T | None:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(interval)


class FieldDemo:
    """The stack's API as the demo's people use it, and its tables for reading back."""

    def __init__(self, target: Target, state: dict[str, Any]) -> None:
        self.target = target
        self.state = state
        self.store = store_of(target)
        self.calendar = DynamoCalendar(
            table=target.resource("FieldTable"),
            tickets_table=target.resource("TicketsTable"),
            ddb=target.client("dynamodb"),
        )
        self._apis: dict[str, ApiClient] = {}

    def api(self, user: LocalUser) -> ApiClient:
        """`user`'s API client (the Cognito user is created on first use)."""
        if user.username not in self._apis:
            try:
                seed_users(
                    self.target.resource("ServiceUserPool"),
                    self.state["aws_endpoint_url"],
                    self.state["region"],
                    (user,),
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "UsernameExistsException":
                    raise
            token = authenticate(self.target, user.username, LOCAL_PASSWORD)["id_token"]
            self._apis[user.username] = ApiClient(self.state["api_url"], token)
        return self._apis[user.username]

    def requester(self) -> ApiClient:
        """An engineer (seeded) saying visits are needed."""
        return self.api(LocalUser(REQUESTER, "engineers", engineer_id="E-ada"))

    def customer(self, customer_id: str) -> ApiClient:
        return self.api(
            LocalUser(f"cust-{customer_id.removeprefix('c-')}", "customers", customer_id)
        )

    def engineer(self, engineer_id: str) -> ApiClient:
        """The booking's own engineer (jobs are theirs: `custom:engineer_id`)."""
        return self.api(
            LocalUser(
                f"eng-{engineer_id.removeprefix('E-').lower()}", "engineers", None, engineer_id
            )
        )

    def ticket(self, ticket_id: str) -> Ticket:
        return self.store.get_ticket(ticket_id).ticket

    def live_booking(self, ticket_id: str, not_this: str | None = None) -> Booking | None:
        live = [
            b
            for b in self.calendar.bookings_for_ticket(ticket_id)
            if b.status in LIVE_BOOKING_STATUSES and b.booking_id != not_this
        ]
        return live[0] if live else None


WAITING_FOR_A_VISIT = (None, "wanted", "awaiting_customer")


def pick_tickets(store: Any, count: int) -> list[Ticket]:
    """Open tickets that can still get a visit, one per device: the thin region's first (up to
    half, its urgent ones first: those the Dispatcher books itself), then the others."""
    found = [
        t
        for t in store.list_tickets(status=TicketStatus.OPEN.value)
        if t.dispatch_state in WAITING_FOR_A_VISIT
    ]
    thin = sorted(
        (t for t in found if t.region == THIN_REGION),
        key=lambda t: (str(t.priority) != "P1" and str(t.customer_tier) != "vip", t.opened_at),
    )[: max(1, count // 2)]
    rest = [t for t in found if t.region != THIN_REGION]
    picked: list[Ticket] = []
    for ticket in [*thin, *rest]:
        if len(picked) < count and ticket.thing not in {p.thing for p in picked}:
            picked.append(ticket)
    return picked


def request_visit(demo: FieldDemo, ticket: Ticket) -> bool:
    """An engineer says the visit is needed (the Dispatcher takes it from the stream)."""
    if ticket.dispatch_state not in (None, "wanted"):
        return True  # diagnostics already had it dispatched during the fleet phase
    try:
        demo.requester().post(
            f"/tickets/{quote(ticket.ticket_id, safe='')}/dispatch", {"reason": REASON}
        )
    except CliError:
        return False  # moved on meanwhile (resolved, under repair): no visit
    return True


def booked_visit(demo: FieldDemo, ticket_id: str, not_this: str | None = None) -> Booking | None:
    """Wait for the Dispatcher's decision; the customer picks a slot when it is theirs."""

    def decided() -> Booking | str | None:
        booking = demo.live_booking(ticket_id, not_this)
        if booking is not None:
            return booking
        state = demo.ticket(ticket_id).dispatch_state
        return state if state not in (None, "wanted", "booked") else None

    outcome = _poll(decided, DECISION_TIMEOUT_S)
    if isinstance(outcome, Booking):
        return outcome
    if outcome != "awaiting_customer":
        return None  # no candidate in time, or waiting for parts
    customer = demo.customer(demo.ticket(ticket_id).customer_id)
    path = f"/tickets/{quote(ticket_id, safe='')}"
    for slot in customer.get(f"{path}/slots"):
        try:
            customer.post(f"{path}/booking", {"slot_id": slot["slot_id"]})
        except CliError:
            continue  # taken meanwhile (or the ticket changed): the next offer
        return demo.live_booking(ticket_id, not_this)
    return None


def _report(api: ApiClient, booking: Booking, status: str, **body: Any) -> None:
    path = f"/bookings/{quote(booking.booking_id, safe='')}"
    version = int(api.get(path)["version"])
    api.post(f"{path}/status", {"status": status, "expected_version": version, **body})


def work(demo: FieldDemo, booking: Booking, agent: DeviceAgent, *, fixed: bool) -> None:
    api = demo.engineer(booking.engineer_id)
    for status in ("en_route", "on_site"):
        _report(api, booking, status)
    if fixed:
        agent.state.clear([c.code for c in agent.state.faults()])
    _report(api, booking, "completed", notes="demo repair")


def _agent(state: dict[str, Any], state_dir: Path, thing: str, outbox: Path) -> DeviceAgent:
    credentials = issue_device_credentials(state_dir, thing)
    agent = DeviceAgent(
        AgentConfig(
            thing=thing,
            broker_url=state["mqtt_url"],
            outbox_dir=outbox / thing,
            ingest_rules=IngestRules.of_stack(state),
            **credential_files(credentials.directory),
        )
    )
    agent.start(connect_timeout=10)
    return agent


def field_phase(
    target: Target, state: dict[str, Any], state_dir: Path, outbox: Path, visits: int = 8
) -> dict[str, Any]:
    demo = FieldDemo(target, state)
    tickets = [t for t in pick_tickets(demo.store, visits) if request_visit(demo, t)]
    booked: list[Booking] = []
    for ticket in tickets:
        booking = booked_visit(demo, ticket.ticket_id)
        if booking is not None:
            booked.append(booking)
    agents: list[DeviceAgent] = []
    try:
        for n, booking in enumerate(list(booked)):
            ticket = demo.ticket(booking.ticket_id)
            agent = _agent(state, state_dir, ticket.thing, outbox)
            agents.append(agent)
            if n == 0:  # cannot complete: back to dispatch, booked again, then fixed
                api = demo.engineer(booking.engineer_id)
                _report(api, booking, "en_route")
                _report(api, booking, "cannot_complete", reason="wrong part on the van")
                again = booked_visit(demo, ticket.ticket_id, not_this=booking.booking_id)
                if again is not None:
                    booked.append(again)
                    work(demo, again, agent, fixed=True)
                continue
            last = n == len(booked) - 1
            if last:  # this device still has the fault: the verification fails
                agent.raise_fault(ticket.fault_code)
            work(demo, booking, agent, fixed=not last)
        time.sleep(10)  # the verification answers land (the sweeper handles the silent ones)
    finally:
        for agent in agents:
            agent.stop(drain_timeout=2)
    asked = [demo.ticket(t.ticket_id) for t in tickets]  # as they stand now
    return field_summary(demo, booked, asked=asked)


def overlaps(bookings: list[Booking]) -> int:
    """Double bookings: pairs of one engineer's bookings whose windows overlap while both held
    the engineer's time. A booking holds it from its creation until it stops being live (its
    last update: cancelled, completed, could not complete); a visit booked into time another
    one gave back (an engineer who finished early, a visit that could not complete) is none."""

    def held(b: Booking) -> tuple[datetime, datetime]:
        live = b.status in LIVE_BOOKING_STATUSES
        return b.created_at, datetime.max.replace(tzinfo=UTC) if live else b.updated_at

    by_engineer: dict[str, list[Booking]] = {}
    for b in bookings:
        by_engineer.setdefault(b.engineer_id, []).append(b)
    count = 0
    for mine in by_engineer.values():
        for a, b in combinations(mine, 2):
            (a_from, a_to), (b_from, b_to) = held(a), held(b)
            if a.start < b.end and b.start < a.end and a_from < b_to and b_from < a_to:
                count += 1
    return count


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


# Why a ticket that needed a visit has none, from the dispatch state it was left in: the
# Dispatcher found nobody in time (hard rules), is waiting for a backorder, left the choice to
# the customer who has not booked an offer; `timed_out` is a ticket the Dispatcher had not
# decided (no state, or `wanted` again) or booked only after the demo stopped waiting.
UNBOOKED_BECAUSE = {
    DispatchState.NO_CANDIDATE.value: "no_candidate",
    DispatchState.AWAITING_PARTS.value: "waiting_for_parts",
    DispatchState.AWAITING_CUSTOMER.value: "awaiting_customer",
}
UNBOOKED_REASONS = ("no_candidate", "waiting_for_parts", "awaiting_customer", "timed_out")


def unbooked_reasons(asked: list[Ticket], booked: list[Booking]) -> dict[str, int]:
    """How many of the tickets asked a visit for got no booking, by why (every reason listed)."""
    with_visit = {b.ticket_id for b in booked}
    counts = dict.fromkeys(UNBOOKED_REASONS, 0)
    for ticket in asked:
        if ticket.ticket_id not in with_visit:
            reason = UNBOOKED_BECAUSE.get(ticket.dispatch_state or "", "timed_out")
            counts[reason] += 1
    return counts


def field_summary(demo: FieldDemo, booked: list[Booking], *, asked: list[Ticket]) -> dict[str, Any]:
    bookings = [demo.calendar.get_booking(b.booking_id) for b in booked]
    days = {local_day(b) for b in bookings}
    board = [b for d in days for b in demo.calendar.board(d)]
    details = {b.ticket_id: demo.store.get_ticket(b.ticket_id) for b in bookings}
    waits = [
        (b.created_at - details[b.ticket_id].ticket.opened_at).total_seconds() for b in bookings
    ]
    visits = [v for d in details.values() for v in d.visits]
    finished = [v for v in visits if v.outcome.value != "in_progress"]
    inside = [b for b in bookings if b.end <= details[b.ticket_id].ticket.sla_resolution_due]
    outcomes: dict[str, int] = {}
    for v in visits:
        outcomes[v.outcome.value] = outcomes.get(v.outcome.value, 0) + 1
    by = {s: sum(1 for b in bookings if b.source is s) for s in BookingSource}
    return {
        "visits_asked_for": len(asked),
        "visits_booked": len(bookings),
        "visits_not_booked": unbooked_reasons(asked, bookings),
        "visits_booked_by_customers": by[BookingSource.CUSTOMER],
        "visits_booked_by_dispatcher": by[BookingSource.AUTO],
        "double_bookings": overlaps(board),
        "median_open_to_booked_s": round(statistics.median(waits), 1) if waits else None,
        "visits_inside_sla": _share(len(inside), len(bookings)),
        "first_time_fix_rate": _share(sum(1 for v in finished if v.first_time_fix), len(finished)),
        "visit_outcomes": dict(sorted(outcomes.items())),
        "partner_share": _share(sum(1 for b in bookings if b.partner), len(bookings)),
        "thin_region_visits": sum(1 for b in bookings if b.region == THIN_REGION),
        "tickets_resolved_on_site": sum(
            1
            for d in details.values()
            if d.ticket.resolution and d.ticket.resolution.value == "on_site"
        ),
    }
