"""FaultIntake and DeadLetterRecorder handlers on moto (`mock_aws`), tables from template.yaml."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aftercare.adapters.aws import client
from aftercare.domain.lifecycle import change_status
from aftercare.domain.parts import home_shard
from aftercare.models.tickets import TicketStatus

from infra.bench.capacity import item_size, write_units
from infra.seeding import demo_devices
from tests.fakes.lambda_runtime import FakeContext, load_handler
from tests.integration.intake_stack import (
    NOW,
    THING,
    invoke,
    parked,
    record,
    report,
    sqs_record,
    store,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def calls(aws: dict[str, Any]) -> Counter[str]:
    counter: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        counter[event_name.rsplit(".", 1)[-1]] += 1

    client("dynamodb").meta.events.register("before-call.dynamodb", count)
    return counter


def test_canonical_event_opens_a_ticket(intake, aws):
    # Given the canonical SQS event from tests/events (a FAN-STALL report of a seeded device)
    event = json.loads((ROOT / "tests/events/sqs_fault_batch.json").read_text())
    # When the handler runs
    response = intake.handler(event, FakeContext())
    # Then no record failed and the ticket exists, recorded under the topic's thing
    assert response == {"batchItemFailures": []}
    (ticket,) = store(aws).list_tickets(thing=THING)
    assert ticket.fault_code == "FAN-STALL" and ticket.status is TicketStatus.OPEN


def test_request_budget_new_fault_and_duplicate(intake, aws, calls):
    # When a new fault whose catalog entry needs no parts is processed
    invoke(intake, record(report("budget-0001", code="TEMP-HIGH")))
    new_fault = sum(calls.values())
    updates = calls.get("UpdateItem", 0)
    calls.clear()
    # and the same fault is delivered again
    invoke(intake, record(report("budget-0001", code="TEMP-HIGH")))
    duplicate = sum(calls.values())
    # Then the new fault costs at most 4 DynamoDB requests and the duplicate at most 2: the
    # fourth is the storm counter's one UpdateItem per new ticket (its shard of the window, or,
    # while an incident is open, the incident's statistics shard); the incident pointer rides
    # in the first BatchGetItem and a child's link in the ticket's transaction
    assert new_fault <= 4, calls
    assert updates == 1
    assert duplicate <= 2, calls
    assert len(store(aws).list_tickets(thing=THING)) == 1


def test_request_budget_ticket_with_parts(intake, aws, calls):
    # When a new fault opens a ticket that reserves parts
    invoke(intake, record(report("budget-parts-1", code="COMP-SHORTCYCLE")))
    # Then the whole open (ticket + holds) costs at most 6 DynamoDB requests (5 + the storm
    # counter's UpdateItem, as above)
    assert sum(calls.values()) <= 6, calls
    (ticket,) = store(aws).list_tickets(thing=THING)
    assert {p.sku for p in ticket.parts} == {"RELAY-COMP-30A", "CAP-RUN-45UF"}
    assert all(p.status == "held" for p in ticket.parts)


def test_a_storm_opens_one_incident_and_a_child_keeps_the_budget(intake, aws, calls):
    # Given 24 IC-300 devices that reported IO-MODULE-FAIL in the same minute (threshold 20)
    fleet = [d for d in demo_devices() if d.model == "IC-300"][:25]
    for device in fleet[:24]:
        invoke(intake, record(report(f"storm-{device.thing}", code="IO-MODULE-FAIL"), device.thing))
    calls.clear()
    # When the 25th reports it
    last = fleet[24]
    invoke(intake, record(report(f"storm-{last.thing}", code="IO-MODULE-FAIL"), last.thing))
    # Then it is a child of the one incident, and cost what any ticket with parts costs: the
    # incident's statistics shard replaces the storm counter's UpdateItem
    assert sum(calls.values()) <= 6 and calls["UpdateItem"] == 1, calls
    tickets = [t for d in fleet for t in store(aws).list_tickets(thing=d.thing)]
    assert len(tickets) == 25 and len({t.incident_id for t in tickets}) == 1
    (child,) = [t for t in tickets if t.thing == last.thing]
    assert child.incident_id is not None
    detail = store(aws).get_ticket(child.ticket_id)
    assert "incident_linked" in [e.kind for e in detail.timeline]


def test_request_budget_ticket_holding_a_sharded_part(intake, aws, calls):
    # When a new fault opens a ticket needing PSU-240-A, whose stock is split over 4 shards
    invoke(intake, record(report("budget-shard-1", code="PSU-OVERVOLT")))
    # Then the open costs the same requests as an unsharded part: the shards are read in the
    # BatchGetItem that read one stock item before (4 keys a warehouse instead of 1), and the
    # hold writes one shard inside the ticket's transaction (plus the storm counter's UpdateItem
    # every new ticket pays since fleet incidents)
    assert sum(calls.values()) <= 6, calls
    assert calls["BatchGetItem"] == 3 and calls["TransactWriteItems"] == 1, calls
    (ticket,) = store(aws).list_tickets(thing=THING)
    (line,) = ticket.parts
    assert line.status == "held"
    assert line.shard == home_shard(ticket.ticket_id, "PSU-240-A", 4)


def test_correlation_budget(intake, aws, calls):
    # Given an open ticket
    invoke(intake, record(report("corr-0001")))
    calls.clear()
    # When another report of the same code arrives
    invoke(intake, record(report("corr-0002")))
    # Then it costs 2 requests and adds an occurrence to the same ticket
    assert sum(calls.values()) <= 2, calls
    (ticket,) = store(aws).list_tickets(thing=THING)
    assert ticket.occurrences == 2
    detail = store(aws).get_ticket(ticket.ticket_id)
    assert {o.fault_id for o in detail.occurrences} == {"corr-0001", "corr-0002"}


def test_bad_messages_are_parked_and_good_ones_processed(intake, aws):
    # Given a batch mixing valid and invalid reports
    batch = [
        record(report("good-0001")),
        record(b"{oops"),
        record(report("spoof-0001", thing="ac-hp-0008")),
        record(report("ghost-0001"), thing="ghost-0001"),
        record({**report("extra-0001"), "colour": "red"}),
        sqs_record("not an envelope"),
        record(report("good-0002", code="TEMP-HIGH")),
    ]
    # When the handler processes it
    response = invoke(intake, *batch)
    # Then nothing is retried, the valid ones opened tickets, the rest are parked with reasons
    assert response == {"batchItemFailures": []}
    assert len(store(aws).list_tickets(thing=THING)) == 2
    reasons = sorted(p["reason"] for p in parked(aws))
    assert reasons == [
        "invalid_envelope",
        "malformed_json",
        "thing_mismatch",
        "unknown_device",
        "unknown_field",
    ]


def test_storage_failure_fails_only_that_record(intake, aws, monkeypatch):
    # Given storage failing for one device only
    real = intake.deps().store.load_intake_context

    def flaky(thing: str, code: str, fault_id: str) -> Any:
        if fault_id == "fail-0001":
            raise RuntimeError("simulated DynamoDB outage")
        return real(thing, code, fault_id)

    monkeypatch.setattr(intake.deps().store, "load_intake_context", flaky)
    failing, fine = record(report("fail-0001")), record(report("fine-0001", code="TEMP-HIGH"))
    # When a batch holds a record for it and another
    response = invoke(intake, failing, fine)
    # Then only that record is reported for retry
    assert response == {"batchItemFailures": [{"itemIdentifier": failing["messageId"]}]}
    assert [t.fault_code for t in store(aws).list_tickets(thing=THING)] == ["TEMP-HIGH"]


def test_repeat_after_resolution_is_linked(intake, aws):
    # Given a ticket that was resolved
    hour_ago = NOW - timedelta(hours=1)
    first_report = report("rep-0001", occurred_at=(hour_ago - timedelta(seconds=3)).isoformat())
    invoke(intake, record(first_report, at=hour_ago))
    (first,) = store(aws).list_tickets(thing=THING)
    change_status(
        store(aws),
        first.ticket_id,
        TicketStatus.RESOLVED,
        actor="eng",
        reason="fan replaced",
        now=NOW - timedelta(minutes=30),
    )
    # When the same fault recurs
    invoke(intake, record(report("rep-0002")))
    # Then a new open ticket is linked to the first as a repeat
    (again,) = store(aws).list_tickets(thing=THING, status="open")
    assert again.repeat_of == first.ticket_id
    timeline = store(aws).get_ticket(first.ticket_id).timeline
    assert [e.kind for e in timeline] == [
        "opened",
        "parts_reserved",
        "status_changed",
        "repeat_reported",
    ]
    # And resolving it remotely released its held fan
    assert timeline[2].detail["parts"] == [
        {"sku": "FAN-80MM", "qty": 1, "from": "held", "to": "released"}
    ]


def test_the_report_that_opened_a_ticket_stays_a_duplicate_after_the_ticket_moved_on(intake, aws):
    # Given a ticket opened by one report (no dedup marker: the ticket itself marks it),
    # resolved, and a newer report of the same code that opened a repeat ticket
    hour_ago = NOW - timedelta(hours=1)
    opening = report("late-0001", occurred_at=(hour_ago - timedelta(seconds=3)).isoformat())
    invoke(intake, record(opening, at=hour_ago))
    (first,) = store(aws).list_tickets(thing=THING)
    change_status(
        store(aws), first.ticket_id, TicketStatus.RESOLVED, actor="eng", reason="fixed", now=NOW
    )
    invoke(intake, record(report("late-0002")))
    # When the opening report is delivered again (a replayed dead letter, say)
    response = invoke(intake, record(opening))
    # Then it changes nothing: no third ticket, no occurrence added to the repeat ticket
    assert response == {"batchItemFailures": []}
    tickets = store(aws).list_tickets(thing=THING)
    assert len(tickets) == 2 and all(t.occurrences == 1 for t in tickets)


def test_a_new_ticket_writes_no_dedup_marker(intake, aws):
    # Given the transactions intake sends are recorded
    sizes: list[int] = []
    units: list[float] = []

    def record_size(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["TransactItems"]))
        items = [next(iter(i.values()))["Item"] for i in params["TransactItems"]]
        units.extend(write_units(item_size(i), transactional=True) for i in items)

    client("dynamodb").meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems", record_size
    )
    # When a report without parts opens a ticket
    invoke(intake, record(report("nomark-0001", code="TEMP-HIGH")))
    # Then its transaction holds 3 items (lock, ticket, occurrence carrying the opening
    # timeline entry), each under 1 KB (6 WRU by the billing rules, the cost budget of a new
    # fault), no FAULT#... marker (the ticket, keyed by the fault, is one), no timeline item
    # and no escalation item: the first step is on the ticket itself
    assert sizes == [3] and sum(units) == 6
    items = aws["ddb"].scan(TableName=aws["resources"]["TicketsTable"])["Items"]
    assert not [i for i in items if i["pk"]["S"].startswith("FAULT#")]
    assert {i["sk"]["S"].split("#")[0] for i in items if i["pk"]["S"].startswith("TICKET#")} == {
        "META",
        "OCC",
    }
    (meta,) = [i for i in items if i["sk"]["S"] == "META"]
    assert {"esc_index", "esc_bucket", "esc_next_at"} <= set(meta)
    # And the ticket's timeline still opens with its `opened` entry, read from the occurrence
    (ticket_id,) = {i["pk"]["S"].removeprefix("TICKET#") for i in items if i["sk"]["S"] == "META"}
    detail = store(aws).get_ticket(ticket_id)
    assert [entry.kind for entry in detail.timeline] == ["opened"]
    assert [o.fault_id for o in detail.occurrences] == ["nomark-0001"]


def test_dead_letters_are_parked_with_their_reason(aws):
    # Given the recorder and two dead letters: a rule error and an exhausted fault message
    recorder = load_handler("dead_letter_recorder")
    recorder.deps.cache_clear()
    rule_error = {
        "ruleName": "aftercare_fault_intake_local",
        "topic": f"dt/aftercare/{THING}/fault",
        "cloudwatchTraceId": "t",
        "clientId": "",
        "base64OriginalPayload": base64.b64encode(b"\x00\x01").decode(),
        "failures": [
            {"failedAction": "SqsAction", "failedResource": "q", "errorMessage": "denied"}
        ],
    }
    exhausted = json.loads(record(report("dead-0001"))["body"])
    letters = [sqs_record(json.dumps(rule_error)), sqs_record(json.dumps(exhausted))]
    letters[1]["attributes"]["ApproximateReceiveCount"] = "6"
    # When the recorder runs
    response = recorder.handler({"Records": letters}, FakeContext())
    # Then both are parked, each with why it died
    assert response == {"batchItemFailures": []}
    by_reason = {p["reason"]: p for p in parked(aws)}
    assert set(by_reason) == {"rule_error:SqsAction", "processing_failed_after_retries"}
    assert by_reason["rule_error:SqsAction"]["thing"] == THING
    assert "6 times" in by_reason["processing_failed_after_retries"]["detail"]
