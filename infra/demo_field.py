"""The demo's field phase: open tickets get visits booked (by a dispatcher, or by the customer
choosing a time), engineers work through their jobs through the API, each device verifies the
fix with its self-test over MQTT; one visit cannot complete and is booked again; then the
field figures for the summary.

Booking here goes straight to the calendar (as the dispatcher and the customer's slot booking
do through their own routes); every write is the calendar's conditional transaction, so the
double-booking count is computed, not assumed: overlaps of non-cancelled bookings per engineer.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aftercare.adapters.calendar import DynamoCalendar
from aftercare.domain.ports import SlotTaken
from aftercare.domain.tickets import Ticket
from aftercare.models.field import Booking, BookingSource, BookingStatus
from aftercare.models.tickets import TicketStatus

from devices.agent import DeviceAgent
from devices.config import AgentConfig, credential_files
from infra.cli_session import ApiClient, authenticate
from infra.local.broker_auth import issue_device_credentials
from infra.local.provision_api import LOCAL_PASSWORD
from infra.stores import store_of
from infra.target import Target

ENGINEERS = {"E-ada": "eng-ada", "E-linus": "eng-linus"}
VISIT = timedelta(minutes=45)


def _agent(state: dict[str, Any], state_dir: Path, thing: str, outbox: Path) -> DeviceAgent:
    credentials = issue_device_credentials(state_dir, thing)
    agent = DeviceAgent(
        AgentConfig(
            thing=thing,
            broker_url=state["mqtt_url"],
            outbox_dir=outbox / thing,
            **credential_files(credentials.directory),
        )
    )
    agent.start(connect_timeout=10)
    return agent


def _book(
    calendar: DynamoCalendar,
    ticket: Ticket,
    engineer: str,
    n: int,
    day: datetime,
    *,
    by_customer: bool,
) -> Booking:
    """The next free quarter hour on the engineer's day (a taken one is refused: try the next)."""
    now = datetime.now(UTC)
    for step in range(n, n + 96):
        start = day + timedelta(minutes=15 * step)
        booking = Booking(
            booking_id=f"B-{ticket.ticket_id}-{step}",
            ticket_id=ticket.ticket_id,
            engineer_id=engineer,
            customer_id=ticket.customer_id,
            thing=ticket.thing,
            region=ticket.region,
            start=start,
            end=start + VISIT,
            time_zone="UTC",
            status=BookingStatus.SCHEDULED,
            source=BookingSource.CUSTOMER if by_customer else BookingSource.DISPATCHER,
            created_at=now,
            updated_at=now,
            created_by=f"customer:{ticket.customer_id}" if by_customer else "user:mgr-grace",
        )
        try:
            calendar.book(booking, now)
        except SlotTaken:
            continue
        return booking
    raise RuntimeError(f"no free time for {ticket.ticket_id} on {engineer}'s day")


def _report(api: ApiClient, booking: Booking, version: int, status: str, **body: Any) -> int:
    answer = api.post(
        f"/bookings/{quote(booking.booking_id, safe='')}/status",
        {"status": status, "expected_version": version, **body},
    )
    return int(answer["booking"]["version"])


def _work(api: ApiClient, booking: Booking, agent: DeviceAgent, fixed: bool) -> None:
    version = _report(api, booking, 1, "en_route")
    version = _report(api, booking, version, "on_site")
    if fixed:
        agent.state.clear([c.code for c in agent.state.faults()])
    _report(api, booking, version, "completed", notes="demo repair")


def field_phase(
    target: Target, state: dict[str, Any], state_dir: Path, outbox: Path, visits: int = 6
) -> dict[str, Any]:
    store = store_of(target)
    calendar = DynamoCalendar(
        table=target.resource("FieldTable"),
        tickets_table=target.resource("TicketsTable"),
        ddb=target.client("dynamodb"),
    )
    apis = {
        e: ApiClient(state["api_url"], authenticate(target, u, LOCAL_PASSWORD)["id_token"])
        for e, u in ENGINEERS.items()
    }
    open_tickets = [t for t in store.list_tickets(status=TicketStatus.OPEN.value)][:visits]
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    agents: list[DeviceAgent] = []
    booked: list[Booking] = []
    try:
        for n, ticket in enumerate(open_tickets):
            agent = _agent(state, state_dir, ticket.thing, outbox)
            agents.append(agent)
            engineer = list(ENGINEERS)[n % len(ENGINEERS)]
            booking = _book(calendar, ticket, engineer, 4 * n, day, by_customer=n % 2 == 1)
            booked.append(booking)
            api = apis[engineer]
            if n == 0:  # cannot complete: back to dispatch, booked again, then fixed
                version = _report(api, booking, 1, "en_route")
                _report(api, booking, version, "cannot_complete", reason="wrong part on the van")
                again = _book(calendar, ticket, engineer, 4 * n + 40, day, by_customer=False)
                booked.append(again)
                _work(api, again, agent, fixed=True)
                continue
            # the last visit's device still has the fault: the verification fails
            if n == len(open_tickets) - 1:
                agent.raise_fault(ticket.fault_code)
            _work(api, booking, agent, fixed=n != len(open_tickets) - 1)
        time.sleep(10)  # the verification answers land (the sweeper handles the silent ones)
    finally:
        for agent in agents:
            agent.stop(drain_timeout=2)
    return field_summary(target, calendar, booked)


def _overlaps(bookings: list[Booking]) -> int:
    count = 0
    by_engineer: dict[str, list[Booking]] = {}
    for b in bookings:
        if b.status is not BookingStatus.CANCELLED:
            by_engineer.setdefault(b.engineer_id, []).append(b)
    for mine in by_engineer.values():
        mine.sort(key=lambda b: b.start)
        count += sum(1 for a, b in pairwise(mine) if b.start < a.end)
    return count


def field_summary(
    target: Target, calendar: DynamoCalendar, booked: list[Booking]
) -> dict[str, Any]:
    store = store_of(target)
    bookings = [calendar.get_booking(b.booking_id) for b in booked]
    days = {b.start.date() for b in bookings}
    board = [b for d in days for b in calendar.board(d)]
    details = {b.ticket_id: store.get_ticket(b.ticket_id) for b in bookings}
    waits = [
        (b.created_at - details[b.ticket_id].ticket.opened_at).total_seconds() for b in bookings
    ]
    visits = [v for d in details.values() for v in d.visits]
    finished = [v for v in visits if v.outcome.value != "in_progress"]
    inside = [b for b in bookings if b.end <= details[b.ticket_id].ticket.sla_resolution_due]
    return {
        "visits_booked": len(bookings),
        "visits_booked_by_customers": sum(
            1 for b in bookings if b.source is BookingSource.CUSTOMER
        ),
        "double_bookings": _overlaps(board),
        "median_open_to_booked_s": round(statistics.median(waits), 1) if waits else None,
        "visits_inside_sla": round(len(inside) / len(bookings), 3) if bookings else None,
        "first_time_fix_rate": round(
            sum(1 for v in finished if v.first_time_fix) / len(finished), 3
        )
        if finished
        else None,
        "visit_outcomes": dict(sorted({v.outcome.value: 0 for v in visits}.items()))
        | {
            o: sum(1 for v in visits if v.outcome.value == o)
            for o in {v.outcome.value for v in visits}
        },
        "partner_share": round(sum(1 for b in bookings if b.partner) / len(bookings), 3)
        if bookings
        else None,
        "tickets_resolved_on_site": sum(
            1
            for d in details.values()
            if d.ticket.resolution and d.ticket.resolution.value == "on_site"
        ),
    }
