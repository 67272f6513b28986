"""Booked repairs on the running local stack: the seeded engineer directory, offers, booking
through the HTTP API with real Cognito tokens, and the race the calendar exists for:
20 customers booking the same engineer's same window at once get exactly one booking; the
other 19 get 409 `slot_taken`.

The local function serves one invocation at a time (one Lambda instance), so the API race is
also run a second way: 20 threads writing through the calendar adapter straight to the stack's
moto server at once, where only the conditional transaction decides.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen
from zoneinfo import ZoneInfo

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.ticket_items import ticket_item
from aftercare.domain.availability import parse_slot_id, slot_id
from aftercare.domain.ports import SlotTaken
from aftercare.models.field import BookingStatus

from infra.local.provision_api import LOCAL_PASSWORD, LocalUser, seed_users
from infra.local.stack import LocalStack
from tests.e2e.conftest import http_api_functions
from tests.e2e.fuzzing import api_operations, server_errors
from tests.fakes.diagnostics import make_ticket
from tests.fakes.field import booking

ROOT = Path(__file__).resolve().parents[2]
RACERS = 20
ENGINEER = "E-aoife"  # seeded: eu-west, every model and category, weekdays in Europe/Dublin
DUBLIN = ZoneInfo("Europe/Dublin")


def next_weekday_at(hour: int, days_ahead: int) -> datetime:
    """A weekday at least `days_ahead` days from now, `hour`:00 Dublin time, in UTC."""
    day = datetime.now(DUBLIN).date() + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=DUBLIN).astimezone(UTC)


class Env:
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.resources = state["resources"]
        self.ddb = self.client("dynamodb")

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.state["aws_endpoint_url"],
            region_name=self.state["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def token(self, user: str) -> str:
        answer = self.client("cognito-idp").initiate_auth(
            ClientId=self.resources["ServiceUserPoolClient"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user, "PASSWORD": LOCAL_PASSWORD},
        )
        return str(answer["AuthenticationResult"]["IdToken"])

    def call(self, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = Request(
            self.state["api_url"] + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def open_tickets(self, prefix: str, count: int) -> list[str]:
        """`count` open RT-X connectivity tickets in eu-west, one per customer `<prefix>NN`,
        written through the ticket store's own item mapping."""
        ids = []
        for n in range(count):
            ticket = make_ticket(thing=f"rt-x-{prefix}{n:02d}").model_copy(
                update={
                    "ticket_id": f"T-{prefix.upper()}{n:02d}",
                    "customer_id": f"c-{prefix}{n:02d}",
                }
            )
            self.ddb.put_item(
                TableName=self.resources["TicketsTable"], Item=to_item(ticket_item(ticket))
            )
            ids.append(ticket.ticket_id)
        return ids

    def customers(self, prefix: str, count: int) -> list[str]:
        users = tuple(
            LocalUser(f"{prefix}-{n:02d}", "customers", f"c-{prefix}{n:02d}") for n in range(count)
        )
        seed_users(
            self.resources["ServiceUserPool"],
            self.state["aws_endpoint_url"],
            self.state["region"],
            users,
        )
        return [self.token(u.username) for u in users]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    stack = LocalStack(
        ROOT,
        tmp_path_factory.mktemp("booking") / "state",
        only_functions=http_api_functions(),
    )
    try:
        yield Env(stack.start())
    finally:
        stack.stop()


def test_the_seeded_directory_is_served_to_staff(env):
    status, rows = env.call(env.token("eng-ada"), "GET", "/engineers?region=ap-east")
    assert status == 200
    kinds = {r["kind"] for r in rows}
    assert kinds == {"in_house", "partner"} and len(rows) == 5


def test_twenty_customers_racing_for_one_slot_get_exactly_one_booking(env):
    # Given 20 customers, each with an open ticket the same engineer can take
    tickets = env.open_tickets("race", RACERS)
    tokens = env.customers("race", RACERS)
    start = next_weekday_at(9, days_ahead=2)
    slot = slot_id(ENGINEER, start, 60)
    # When all of them book that engineer's 09:00 window at the same moment
    gate = threading.Barrier(RACERS)

    def attempt(n: int) -> tuple[int, Any]:
        gate.wait()
        return env.call(tokens[n], "POST", f"/tickets/{tickets[n]}/booking", {"slot_id": slot})

    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(attempt, range(RACERS)))
    # Then exactly one got the booking and the other 19 were told slot_taken
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * (RACERS - 1), answers
    assert {body["reason"] for status, body in answers if status == 409} == {"slot_taken"}
    [won] = [body for status, body in answers if status == 201]
    # And the engineer's day holds that one booking, whoever asks
    calendar = DynamoCalendar(
        table=env.resources["FieldTable"], tickets_table=env.resources["TicketsTable"], ddb=env.ddb
    )
    day = start.astimezone(DUBLIN).date()
    assert [b.booking_id for b in calendar.bookings_for_engineer(ENGINEER, day)] == [
        won["booking_id"]
    ]
    busy = calendar.busy(
        ENGINEER, start - timedelta(hours=1), start + timedelta(hours=2), datetime.now(UTC)
    )
    assert [(b.start, b.booking_id) for b in busy] == [(start, won["booking_id"])]


def test_twenty_writers_racing_on_the_moto_server_leave_one_booking(env):
    # Given 20 bookings of the same engineer's overlapping windows, from 20 tickets
    start = next_weekday_at(14, days_ahead=3)
    visits = [
        booking(
            start + timedelta(minutes=15 * (n % 3)),
            60,
            engineer_id=ENGINEER,
            ticket_id=f"T-W{n:02d}",
        )
        for n in range(RACERS)
    ]
    gate = threading.Barrier(RACERS)

    def write(n: int) -> str:
        calendar = DynamoCalendar(  # a client per writer, as separate Lambda instances would
            table=env.resources["FieldTable"],
            tickets_table=env.resources["TicketsTable"],
            ddb=env.client("dynamodb"),
        )
        gate.wait()
        try:
            calendar.book(visits[n], datetime.now(UTC))
        except SlotTaken:
            return "taken"
        return "booked"

    # When they all write at once, straight to the stack's DynamoDB
    with ThreadPoolExecutor(RACERS) as pool:
        outcomes = list(pool.map(write, range(RACERS)))
    # Then one booking exists and nothing overlaps it
    assert sorted(outcomes) == ["booked"] + ["taken"] * (RACERS - 1)
    calendar = DynamoCalendar(
        table=env.resources["FieldTable"], tickets_table=env.resources["TicketsTable"], ddb=env.ddb
    )
    live = [
        b for b in calendar.bookings_for_engineer(ENGINEER, start.astimezone(DUBLIN).date())
        if b.status is BookingStatus.SCHEDULED and b.start >= start - timedelta(hours=1)
    ]  # fmt: skip
    assert len(live) == 1


def test_an_unconfirmed_hold_blocks_an_overlapping_assignment_through_the_api(env):
    # Given a customer who was offered slots (each held for them, not yet booked)
    ticket, other = env.open_tickets("held", 2)
    [token] = env.customers("held", 1)
    status, slots = env.call(token, "GET", f"/tickets/{ticket}/slots")
    assert status == 200 and slots
    offered = parse_slot_id(slots[0]["slot_id"])
    manager = env.token("mgr-grace")
    overlapping = {
        "ticket_id": other,
        "engineer_id": offered.engineer_id,
        "start": (offered.start + timedelta(minutes=15)).isoformat(),
    }
    # When a manager assigns another ticket's visit overlapping the held window (not the same
    # window: a quarter of an hour later)
    status, body = env.call(manager, "POST", "/dispatch/assign", overlapping)
    # Then the unconfirmed hold blocks it like a booking would: 409 slot_taken
    assert (status, body["reason"]) == (409, "slot_taken"), body
    # And when the customer books and the manager tries again at the same moment, exactly one
    # write gets the engineer's time: the customer's, whose hold it was
    gate = threading.Barrier(2)

    def customer() -> tuple[int, Any]:
        gate.wait()
        return env.call(
            token, "POST", f"/tickets/{ticket}/booking", {"slot_id": slots[0]["slot_id"]}
        )

    def dispatcher() -> tuple[int, Any]:
        gate.wait()
        return env.call(manager, "POST", "/dispatch/assign", overlapping)

    with ThreadPoolExecutor(2) as pool:
        mine, theirs = pool.submit(customer), pool.submit(dispatcher)
        answers = [mine.result(), theirs.result()]
    assert [status for status, _ in answers] == [201, 409], answers
    busy = DynamoCalendar(
        table=env.resources["FieldTable"], tickets_table=env.resources["TicketsTable"], ddb=env.ddb
    ).busy(
        offered.engineer_id,
        offered.start - timedelta(hours=1),
        offered.start + timedelta(hours=3),
        datetime.now(UTC),
    )
    # (the customer's other offers are still held: busy, with no booking)
    assert [b.booking_id for b in busy if b.booking_id] == [answers[0][1]["booking_id"]]


def test_a_hold_and_a_booking_of_overlapping_windows_racing_leave_exactly_one(env):
    # Given rounds of two writers on one engineer's overlapping windows, each straight to the
    # stack's moto server from its own client: a customer's hold (unconfirmed) and a booking
    start = next_weekday_at(10, days_ahead=4)
    rounds = 6

    def calendar() -> DynamoCalendar:
        return DynamoCalendar(
            table=env.resources["FieldTable"],
            tickets_table=env.resources["TicketsTable"],
            ddb=env.client("dynamodb"),
        )

    def run_round(n: int) -> list[str]:
        at = start + timedelta(hours=n)
        gate = threading.Barrier(2)
        hold_cal, book_cal = calendar(), calendar()

        def hold() -> str:
            gate.wait()
            try:
                hold_cal.hold(
                    engineer_id=ENGINEER, start=at, end=at + timedelta(minutes=60),
                    holder=f"hold:T-H{n}", expires_at=datetime.now(UTC) + timedelta(minutes=5),
                    now=datetime.now(UTC),
                )  # fmt: skip
            except SlotTaken:
                return "taken"
            return "held"

        def book() -> str:
            visit = booking(
                at + timedelta(minutes=30), 60, engineer_id=ENGINEER, ticket_id=f"T-HB{n}"
            )
            gate.wait()
            try:
                book_cal.book(visit, datetime.now(UTC))
            except SlotTaken:
                return "taken"
            return "booked"

        with ThreadPoolExecutor(2) as pool:
            return sorted(f.result() for f in [pool.submit(hold), pool.submit(book)])

    # When each round's two writers go at once
    outcomes = [run_round(n) for n in range(rounds)]
    # Then in every round exactly one of them owns the overlapping time
    for pair in outcomes:
        assert pair in (["held", "taken"], ["booked", "taken"]), outcomes


def test_offer_book_reschedule_cancel_through_the_api(env):
    # Given a customer's open ticket
    [ticket] = env.open_tickets("flow", 1)
    [token] = env.customers("flow", 1)
    # When they ask for slots, book one, move it and cancel it
    status, slots = env.call(token, "GET", f"/tickets/{ticket}/slots")
    assert status == 200 and len(slots) >= 2
    status, first = env.call(
        token, "POST", f"/tickets/{ticket}/booking", {"slot_id": slots[0]["slot_id"]}
    )
    assert status == 201
    _, view = env.call(env.token("eng-ada"), "GET", f"/tickets/{ticket}")
    assert view["status"] == "scheduled"
    status, moved = env.call(
        token, "POST", f"/bookings/{first['booking_id']}/reschedule",
        {"slot_id": slots[1]["slot_id"], "reason": "later suits"},
    )  # fmt: skip
    assert status == 201
    status, cancelled = env.call(
        token, "POST", f"/bookings/{moved['booking_id']}/cancel", {"reason": "fixed"}
    )
    assert status == 200 and cancelled["status"] == "cancelled"
    # Then the ticket's timeline records every change, and both windows are free again
    _, view = env.call(env.token("eng-ada"), "GET", f"/tickets/{ticket}")
    kinds = [e["kind"] for e in view["timeline"] if e["kind"].startswith("visit_")]
    assert kinds == ["visit_booked", "visit_rescheduled", "visit_cancelled"]
    # And the cancellation re-opened the ticket for the customer's choice in the same write
    assert (view["status"], view["dispatch_state"]) == ("open", "awaiting_customer")
    staff = env.token("mgr-grace")
    first_again = env.call(
        staff, "POST", f"/tickets/{ticket}/booking", {"slot_id": slots[0]["slot_id"]}
    )
    assert first_again[0] == 201 and first_again[1]["source"] == "dispatcher"
    # (one live booking per ticket: the second window is refused for the ticket, not the time)
    status, body = env.call(
        staff, "POST", f"/tickets/{ticket}/booking", {"slot_id": slots[1]["slot_id"]}
    )
    assert (status, body["reason"]) == (409, "already_booked")


def test_a_schema_driven_fuzz_of_the_field_routes_finds_no_server_errors(env):
    # (last in the module: a manager's fuzzed PUTs add odd engineers to the directory)
    field = [op for op in api_operations() if "field" in (op.tags or [])]
    assert len(field) == 8
    errors: list[str] = []
    for user in ("mgr-grace", "cust-0001"):
        token = env.token(user)
        for operation in field:
            errors += server_errors(env.state["api_url"], operation, token, max_examples=15)
    assert not errors, "\n".join(errors[:10])
