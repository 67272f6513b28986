"""Field dispatch end to end on the shared local stack (`local_stack`): the Dispatcher reacting
to the tickets stream, the dispatch API with real Cognito tokens, FieldTable's conditional calendar
writes; and a manager's manual assignment racing an automatic booking for the same engineer's
time: one wins, the other gets `slot_taken`."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aftercare.adapters.aws import to_item
from aftercare.models.field import GeoPoint
from aftercare.models.parts import LineStatus, PartsLine
from aftercare.models.tickets import CustomerTier, Priority

from infra.bench.dispatch_local import FieldStack, field_engineer, moto_ddb, visit_ticket
from infra.cli import main as cli_main
from tests.e2e.conftest import SharedStack, Stack, publish_as, wait_for
from tests.e2e.fuzzing import api_operations, server_errors
from tests.e2e.test_diagnostics_api import Env

REGION = "eu-race"  # a region of this module's own: only its engineer covers it
ENGINEER = "E-racer"


@pytest.fixture(scope="module")
def module_env(shared_stack: SharedStack, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The module's clients on the shared stack (its region, engineers and tickets are its own)."""
    stack = shared_stack.get()
    return Env(stack.state, stack.stack.state_dir, tmp_path_factory.mktemp("dispatch") / "outbox")


@pytest.fixture
def env(local_stack: Stack, module_env: Env) -> Env:
    return module_env


@pytest.fixture(scope="module")
def field(module_env: Env) -> FieldStack:
    stack = FieldStack(module_env.state, moto_ddb(module_env.state))
    stack.directory().put_engineer(field_engineer(ENGINEER, REGION, GeoPoint(lat=0, lon=0)))
    return stack


def backorder_ready_at(ready: datetime) -> PartsLine:
    """A backordered fan whose expected arrival (reserved + 7 days lead time) is `ready`."""
    return PartsLine(
        reservation_id="R-race-FAN-80MM",
        sku="FAN-80MM",
        name_en="Cooling fan 80 mm",
        name_zh="80mm 散热风扇",
        qty=1,
        warehouse=None,
        unit_price=12.5,
        currency="EUR",
        status=LineStatus.BACKORDERED,
        reserved_at=ready - timedelta(days=7),
    )


def decided(field: FieldStack, ticket_id: str) -> Any:
    return wait_for(lambda: field.decided(ticket_id), timeout=30, what=f"dispatch of {ticket_id}")


def test_a_standard_ticket_waits_for_the_customer_and_an_engineer_can_ask_again(
    env: Env, field: FieldStack
) -> None:
    # Given a P3 ticket flagged for a visit
    now = datetime.now(UTC)
    ticket = visit_ticket(1, REGION, priority=Priority.P3, now=now)
    field.put_ticket(ticket)
    # Then the Dispatcher leaves the choice to the customer (no booking)
    assert decided(field, ticket.ticket_id).dispatch_state == "awaiting_customer"
    # When an engineer says the visit is needed (again) through the API
    status, body = env.api("eng-ada").call(
        "POST", f"/tickets/{ticket.ticket_id}/dispatch", {"reason": "bearing noise"}
    )
    assert (status, body["dispatch_state"]) == (202, "wanted")

    # Then the Dispatcher decides again: two decisions on the timeline, the request between
    def kinds() -> list[str] | None:
        timeline = field.reader().get_ticket(ticket.ticket_id).timeline
        found = [e.kind for e in timeline if e.kind.startswith("dispatch_")]
        return found if found.count("dispatch_awaiting_customer") == 2 else None

    assert wait_for(kinds, timeout=30, what="the second decision") == [
        "dispatch_awaiting_customer",
        "dispatch_requested",
        "dispatch_awaiting_customer",
    ]


def test_a_vips_preferred_engineer_is_booked_over_a_nearer_one(env: Env, field: FieldStack) -> None:
    # Given a region of two engineers, one at the site and one ~33 km away, and a VIP
    # customer whose record (CustomersTable) says they prefer the farther one
    region = "eu-vipp"
    directory = field.directory()
    directory.put_engineer(field_engineer("E-vip-near", region, GeoPoint(lat=0, lon=0)))
    directory.put_engineer(field_engineer("E-vip-far", region, GeoPoint(lat=0, lon=0.3)))
    now = datetime.now(UTC)
    ticket = visit_ticket(7, region, priority=Priority.P3, now=now, customer_tier=CustomerTier.VIP)
    field.ddb.put_item(
        TableName=env.state["resources"]["CustomersTable"],
        Item=to_item(
            {
                "customer_id": ticket.customer_id,
                "name": "VIP",
                "tier": "vip",
                "preferred_engineers": ["E-vip-far"],
            }
        ),
    )
    # When the flagged ticket appears (a VIP is booked automatically)
    field.put_ticket(ticket)
    # Then the Dispatcher read the preference and booked the preferred engineer
    assert decided(field, ticket.ticket_id).dispatch_state == "booked"
    manager = env.api("mgr-grace")
    board = manager.get(f"/dispatch/board?date={now.date().isoformat()}&region={region}")
    board += manager.get(
        f"/dispatch/board?date={(now + timedelta(days=1)).date().isoformat()}&region={region}"
    )
    (visit,) = [b for b in board if b["ticket_id"] == ticket.ticket_id]
    assert visit["engineer_id"] == "E-vip-far"


def test_bad_requests_get_specific_answers(env: Env) -> None:
    manager, engineer = env.api("mgr-grace"), env.api("eng-ada")
    status, body = manager.call("POST", "/dispatch/assign", {"ticket_id": "T-NOPE", "x": 1})
    assert status == 422
    status, body = engineer.call(
        "POST",
        "/dispatch/assign",
        {"ticket_id": "T-AAAAAAAAAAAA", "engineer_id": ENGINEER, "start": "2030-01-01T09:00:00Z"},
    )
    assert status == 403  # engineers ask for visits; managers assign them
    status, body = manager.call(
        "POST",
        "/dispatch/assign",
        {"ticket_id": "T-AAAAAAAAAAAA", "engineer_id": ENGINEER, "start": "2030-01-01T09:00"},
    )
    assert status == 422  # a start without a time zone
    status, body = manager.call(
        "POST",
        "/dispatch/assign",
        {"ticket_id": "T-AAAAAAAAAAAA", "engineer_id": ENGINEER, "start": "2030-01-01T09:00Z"},
    )
    assert (status, body["reason"]) == (404, "not_found")
    status, body = manager.call("GET", "/dispatch/board?date=not-a-date")
    assert status == 422


@pytest.mark.parametrize("delay_s", [0.0, 0.4, 1.2])
def test_a_manual_assignment_racing_an_automatic_booking_one_wins_the_other_is_slot_taken(
    env: Env, field: FieldStack, delay_s: float
) -> None:
    # Given a P3 ticket waiting for the customer, and a P1 ticket whose part is expected at T0
    now = datetime.now(UTC)
    hour = {0.0: 9, 0.4: 13, 1.2: 17}[delay_s]
    t0 = (now + timedelta(days=2)).replace(hour=hour, minute=0, second=0, microsecond=0)
    manual = visit_ticket(10 + int(delay_s * 10), REGION, priority=Priority.P3, now=now)
    field.put_ticket(manual)
    assert decided(field, manual.ticket_id).dispatch_state == "awaiting_customer"
    auto = visit_ticket(
        20 + int(delay_s * 10),
        REGION,
        priority=Priority.P1,
        now=now,
        parts=[backorder_ready_at(t0)],
        # only T0 itself ends inside the SLA: the automatic booking can only want T0
        sla_resolution_due=t0 + timedelta(minutes=90),
    )
    manager = env.api("mgr-grace")
    answer: dict[str, Any] = {}

    def assign() -> None:
        answer["status"], answer["body"] = manager.call(
            "POST",
            "/dispatch/assign",
            {"ticket_id": manual.ticket_id, "engineer_id": ENGINEER, "start": t0.isoformat()},
        )

    # When the P1 ticket appears and, at about the same time, the manager assigns the P3 one
    # to the same engineer at T0
    racer = threading.Timer(delay_s, assign)
    racer.start()
    field.put_ticket(auto)
    racer.join()
    auto_after = decided(field, auto.ticket_id)
    # Then exactly one visit holds the engineer at T0
    board = manager.get(f"/dispatch/board?date={t0.date().isoformat()}&region={REGION}")
    at_t0 = [
        b for b in board if datetime.fromisoformat(b["start"]) == t0 and b["status"] == "scheduled"
    ]
    assert len(at_t0) == 1, board
    # And the loser was refused: the Dispatcher's write got slot_taken (or, when the manual
    # booking was already there when it read the calendar, no window was left inside the SLA)
    if answer["status"] == 201:
        timeline = field.reader().get_ticket(auto.ticket_id).timeline
        entry = [e for e in timeline if e.kind.startswith("dispatch_")][-1]
        assert (auto_after.dispatch_state, entry.detail.get("slot_taken")) in {
            ("awaiting_customer", 1),
            ("no_candidate", None),
        }, entry
        assert at_t0[0]["ticket_id"] == manual.ticket_id
    else:
        assert (answer["status"], answer["body"]["reason"]) == (409, "slot_taken")
        assert auto_after.dispatch_state == "booked"
        assert at_t0[0]["ticket_id"] == auto.ticket_id


@pytest.mark.parametrize("user", ["mgr-grace", "eng-ada"])
def test_a_schema_driven_fuzz_of_the_dispatch_routes_finds_no_server_errors(
    env: Env, field: FieldStack, user: str
) -> None:
    token = env.token(user)
    errors: list[str] = []
    for operation in api_operations():
        if "dispatch" in operation.path:
            errors += server_errors(env.state["api_url"], operation, token, max_examples=25)
    assert not errors, "\n".join(errors[:10])


def test_the_cli_asks_for_a_visit_assigns_it_and_shows_the_board(
    env: Env, field: FieldStack, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = ["--state-dir", str(env.state_dir)]
    now = datetime.now(UTC)
    ticket = visit_ticket(40, REGION, priority=Priority.P3, now=now)
    field.put_ticket(ticket)
    decided(field, ticket.ticket_id)
    start = (now + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    # An engineer asks for a visit
    assert cli_main(["login", "--user", "eng-ada", *state_dir]) == 0
    capsys.readouterr()
    assert (
        cli_main(
            ["tickets", "dispatch", ticket.ticket_id, "--reason", "noise", "--json", *state_dir]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["dispatch_state"] == "wanted"
    decided(field, ticket.ticket_id)
    # A manager assigns it, and the same time again is slot_taken (exit 1, one line)
    assert cli_main(["login", "--user", "mgr-grace", *state_dir]) == 0
    capsys.readouterr()
    assign = [
        "dispatch",
        "assign",
        ticket.ticket_id,
        "--engineer",
        ENGINEER,
        "--start",
        start.isoformat(),
    ]
    assert cli_main([*assign, "--json", *state_dir]) == 0
    booked = json.loads(capsys.readouterr().out)
    other = visit_ticket(41, REGION, priority=Priority.P3, now=now)
    field.put_ticket(other)
    decided(field, other.ticket_id)
    assert cli_main([*assign[:2], other.ticket_id, *assign[3:], *state_dir]) == 1
    assert capsys.readouterr().err.startswith("aftercare: slot_taken")
    # The board shows the booking with the contract's keys
    board = ["dispatch", "board", "--json", "--date", start.date().isoformat(), "--region", REGION]
    assert cli_main([*board, *state_dir]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert booked["ticket_id"] == ticket.ticket_id and booked["source"] == "dispatcher"
    assert {k: booked[k] for k in rows[0]} in rows
    assert set(rows[0]) == {"booking_id", "ticket_id", "engineer_id", "start", "end", "status"}
    (env.state_dir / "session.json").unlink()


def test_a_fault_whose_code_always_needs_a_visit_is_dispatched_from_intake(
    env: Env, field: FieldStack
) -> None:
    # Given a seeded heat pump reporting a refrigerant leak (the catalog: always on site)
    thing = "ac-hp-0012"
    body = {
        "fault_id": "leak-000001",
        "code": "REFRIG-LOWPRESS",
        "occurred_at": datetime.now(UTC).isoformat(),
        "firmware": "1",
    }
    publish_as(
        env.state,
        thing,
        [{"topic": f"dt/aftercare/{thing}/fault", "payload": json.dumps(body), "qos": 1}],
    )
    engineer = env.api("eng-ada")

    def ticket() -> dict[str, Any] | None:
        rows = engineer.get(f"/tickets?thing={thing}")
        return next((r for r in rows if r["fault_code"] == "REFRIG-LOWPRESS"), None)

    opened = wait_for(ticket, timeout=30, what="the leak's ticket")
    # Then intake flags it and the Dispatcher decides without anyone asking (the decision
    # depends on the seeded engineers' hours at the time the test runs)
    view = wait_for(
        lambda: field.decided(opened["ticket_id"]), timeout=30, what="a dispatch decision"
    )
    assert "needs_onsite_dispatch" in view.flags
    assert view.dispatch_state in {"booked", "awaiting_customer", "no_candidate", "awaiting_parts"}
    kinds = [e.kind for e in field.reader().get_ticket(opened["ticket_id"]).timeline]
    assert f"dispatch_{view.dispatch_state}" in kinds
