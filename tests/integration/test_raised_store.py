"""Raised tickets on DynamoDB (the serial moto server, transactions atomic like DynamoDB's):
one ticket from 20 racing retries of one Idempotency-Key, the key refused for another body,
classification moving the open-fault lock, and callback tasks."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.diagnostics import DynamoDeviceDirectory, DynamoDiagnosticsStore
from aftercare.adapters.tasks import DynamoTaskStore
from aftercare.adapters.ticket_items import ticket_key
from aftercare.domain.access import Caller
from aftercare.domain.channels import load_channel_policy
from aftercare.domain.classification import ClassifyDeps, classify_ticket
from aftercare.domain.escalation import first_tracker, load_escalation
from aftercare.domain.intake import IntakeRules
from aftercare.domain.ports import CodeAlreadyOpen
from aftercare.domain.raising import (
    IdempotencyKeyReused,
    RaiseDeps,
    RaiseOutcome,
    RaiseRequest,
    raise_ticket,
)
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.models.tickets import Channel

from infra.local.motoserver import SerialMotoServer
from infra.local.provision import provision
from infra.local.provision_context import moto_client
from infra.local.seed import seed_demo
from infra.local.template import load_template
from tests.fakes.diagnostics import FakePublisher
from tests.fakes.tables import ticket_store

ROOT = Path(__file__).resolve().parents[2]
RULES = IntakeRules(catalog=load_catalog(), policy=load_policy(), repeat_window=timedelta(days=30))
AGENT = Caller(subject="s", username="eng-ada", groups=frozenset({"engineers"}))


def customer(customer_id: str) -> Caller:
    return Caller(
        subject=customer_id,
        username=f"u-{customer_id}",
        groups=frozenset({"customers"}),
        customer_id=customer_id,
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[dict]:
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer() as server:
        from infra.local.provision_context import AwsClients

        clients = AwsClients.for_endpoint(server.url, "us-east-1")
        result = provision(load_template(ROOT / "template.yaml"), clients, endpoint_url=server.url)
        seed_demo(result.resources, server.url, "us-east-1")
        yield {"url": server.url, "resources": result.resources}


def raise_deps(stack: dict) -> RaiseDeps:
    """Dependencies on a DynamoDB client of their own (boto3 clients per thread)."""
    ddb = moto_client("dynamodb", stack["url"], "us-east-1")
    resources = stack["resources"]
    return RaiseDeps(
        tickets=ticket_store(resources, ddb),
        devices=DynamoDeviceDirectory(devices_table=resources["DevicesTable"], ddb=ddb),
        tasks=DynamoTaskStore(tickets_table=resources["TicketsTable"], ddb=ddb),
        rules=RULES,
        channels=load_channel_policy(),
    )


def test_twenty_racing_retries_of_one_key_make_one_ticket(stack: dict) -> None:
    # Given a customer's app that retries one request 20 times at once with one key
    request = RaiseRequest(thing="ac-hp-0008", symptom="FAN-STALL", channel=Channel.APP)
    deps = [raise_deps(stack) for _ in range(20)]
    now = datetime.now(UTC)

    def attempt(n: int) -> tuple[RaiseOutcome, str]:
        raised = raise_ticket(
            customer("c-0008"), request, key="app-retry-0001", deps=deps[n], now=now
        )
        return raised.outcome, raised.ticket.ticket_id

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(attempt, range(20)))
    # Then exactly one opened it and every other answer names that same ticket
    outcomes = Counter(outcome for outcome, _ in answers)
    assert outcomes[RaiseOutcome.OPENED] == 1, outcomes
    assert outcomes[RaiseOutcome.DUPLICATE_REQUEST] == 19, outcomes
    assert len({ticket_id for _, ticket_id in answers}) == 1
    detail = deps[0].tickets.get_ticket(answers[0][1])
    assert detail.ticket.occurrences == 1 and len(detail.occurrences) == 1
    # And the key is refused for another body
    other = RaiseRequest(thing="ac-hp-0008", symptom="TEMP-HIGH", channel=Channel.WEB)
    with pytest.raises(IdempotencyKeyReused):
        raise_ticket(customer("c-0008"), other, key="app-retry-0001", deps=deps[0], now=now)


def test_free_text_is_classified_in_place_and_the_lock_moves(stack: dict) -> None:
    deps = raise_deps(stack)
    now = datetime.now(UTC)
    # Given an unclassified ticket from free text, and an open PSU-OVERVOLT elsewhere
    request = RaiseRequest(thing="rt-x-0009", symptom="no wifi at all", channel=Channel.WEB)
    raised = raise_ticket(customer("c-0009"), request, key=None, deps=deps, now=now)
    assert raised.ticket.unclassified and not raised.ticket.parts
    classify = ClassifyDeps(
        tickets=deps.tickets,
        diagnostics=DynamoDiagnosticsStore(
            tickets_table=stack["resources"]["TicketsTable"],
            inventory_table=stack["resources"]["InventoryTable"],
            ddb=moto_client("dynamodb", stack["url"], "us-east-1"),
        ),
        publisher=FakePublisher(),
        rules=RULES,
        timeout=timedelta(minutes=5),
    )
    # When an agent classifies it
    done = classify_ticket(AGENT, raised.ticket.ticket_id, "PSU-OVERVOLT", deps=classify, now=now)
    # Then the stored ticket is that code with its part line, and the code's lock names it
    stored = deps.tickets.get_ticket(raised.ticket.ticket_id)
    assert stored.ticket.fault_code == "PSU-OVERVOLT" and not stored.ticket.unclassified
    assert [p.sku for p in stored.ticket.parts] == ["PSU-240-A"]
    kinds = {e.kind for e in stored.timeline}
    assert {"classified", "parts_reserved", "diagnostics_requested"} <= kinds
    assert done.diagnostic is not None and done.diagnostic.routine == "self_test"
    # And its escalation schedule moved to the code's SLA in that transaction
    item = moto_client("dynamodb", stack["url"], "us-east-1").get_item(
        TableName=stack["resources"]["TicketsTable"],
        Key=to_item(ticket_key(raised.ticket.ticket_id)),
    )["Item"]
    expected = first_tracker(stored.ticket, load_escalation())
    assert expected is not None
    assert (int(item["esc_index"]["N"]), int(item["esc_next_at"]["N"])) == (0, expected.next_epoch)
    # And a report of that code now joins it; a second free-text ticket cannot take the code
    again = RaiseRequest(thing="rt-x-0009", symptom="PSU-OVERVOLT", channel=Channel.APP)
    joined = raise_ticket(customer("c-0009"), again, key=None, deps=deps, now=now)
    assert joined.outcome is RaiseOutcome.ALREADY_BEING_HANDLED
    assert joined.ticket.ticket_id == raised.ticket.ticket_id
    second = raise_ticket(customer("c-0009"), request, key=None, deps=deps, now=now)
    with pytest.raises(CodeAlreadyOpen):
        classify_ticket(AGENT, second.ticket.ticket_id, "PSU-OVERVOLT", deps=classify, now=now)


def test_a_vip_phone_ticket_gets_one_callback_task(stack: dict) -> None:
    deps = raise_deps(stack)
    now = datetime.now(UTC)
    request = RaiseRequest(
        thing="ic-300-0007", symptom="TEMP-HIGH", channel=Channel.PHONE, for_customer="c-0007"
    )
    raised = raise_ticket(AGENT, request, key="call-0000001", deps=deps, now=now)
    replay = raise_ticket(AGENT, request, key="call-0000001", deps=deps, now=now)
    assert raised.callback is not None and replay.outcome is RaiseOutcome.DUPLICATE_REQUEST
    open_tasks = [
        t for t in deps.tasks.list_tasks("open") if t.ticket_id == raised.ticket.ticket_id
    ]
    assert [t.task_id for t in open_tasks] == [raised.callback.task_id]
    deps.tasks.complete_task(raised.callback.task_id, by="user:eng-ada", at=now, note=None)
    assert raised.callback.task_id not in {t.task_id for t in deps.tasks.list_tasks("open")}
    timeline = deps.tickets.get_ticket(raised.ticket.ticket_id).timeline
    assert {"callback_requested", "callback_done"} <= {e.kind for e in timeline}
