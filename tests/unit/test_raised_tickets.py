"""Tickets people raise (customers, agents): one pipeline with the device's reports.

Domain use cases on in-memory fakes: correlation with device faults, Idempotency-Key retries
(also when two retries race), free text → unclassified → classified, the channel policy.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.channels import load_channel_policy
from aftercare.domain.classification import AlreadyClassified, ClassifyDeps, classify_ticket
from aftercare.domain.intake import IntakeRules, intake_fault
from aftercare.domain.ports import CodeAlreadyOpen, RequestMark
from aftercare.domain.raising import (
    ChannelNotAllowed,
    CustomerMismatch,
    IdempotencyKeyReused,
    RaiseDeps,
    RaiseOutcome,
    RaiseRequest,
    UnknownSymptom,
    raise_ticket,
    symptom_code,
    symptom_list,
)
from aftercare.domain.rules import load_catalog
from aftercare.domain.support import DeviceNotFound
from aftercare.models.parts import LineStatus
from aftercare.models.tickets import Channel, CustomerTier

from tests.fakes.faults import THING
from tests.fakes.raised import RaisedWorld, raised_world
from tests.fakes.stores import FakeTicketStore
from tests.unit.test_intake import envelope, report

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CUSTOMER = Caller(
    subject="s-1", username="cust-std", groups=frozenset({"customers"}), customer_id="c-std"
)
OTHER_CUSTOMER = Caller(
    subject="s-2", username="cust-other", groups=frozenset({"customers"}), customer_id="c-other"
)
AGENT = Caller(subject="s-3", username="eng-ada", groups=frozenset({"engineers"}))


@pytest.fixture
def world() -> RaisedWorld:
    return raised_world()


@pytest.fixture
def store(world: RaisedWorld) -> FakeTicketStore:
    return world.store


@pytest.fixture
def rules(world: RaisedWorld) -> IntakeRules:
    return world.rules


@pytest.fixture
def deps(world: RaisedWorld) -> RaiseDeps:
    return world.raising


@pytest.fixture
def classify_deps(world: RaisedWorld) -> ClassifyDeps:
    return world.classifying


def ask(
    symptom: str = "FAN-STALL", channel: Channel = Channel.APP, thing: str = THING, **extra: Any
) -> RaiseRequest:
    return RaiseRequest(thing=thing, symptom=symptom, channel=channel, **extra)


def test_a_customer_raises_a_ticket_that_intake_would_have_opened(store, deps):
    # Given a customer's in-warranty device and a fan in stock
    # When the customer raises FAN-STALL in the app
    raised = raise_ticket(CUSTOMER, ask(description="rattles"), key=None, deps=deps, now=NOW)
    # Then a ticket is opened with the device path's priority, SLA and part hold
    ticket = raised.ticket
    assert raised.outcome is RaiseOutcome.OPENED and ticket.fault_code == "FAN-STALL"
    assert ticket.priority == "P2" and ticket.sla_response_due == NOW + timedelta(hours=4)
    assert [(p.sku, p.status) for p in ticket.parts] == [("FAN-80MM", LineStatus.HELD)]
    assert ticket.auto_diagnose  # the AutoDiagnose stream consumer will run its routine
    # And it says who raised it and through which channel, on the record and the timeline
    assert (ticket.channel, ticket.raised_by) == (Channel.APP, "customer:c-std")
    opened = store.timeline[ticket.ticket_id][0]
    assert opened.kind == "opened" and opened.actor == "customer:c-std"
    assert opened.detail["channel"] == "app"
    assert store.occurrences[ticket.ticket_id][0].message == "rattles"


def test_device_raised_tickets_say_channel_device(store, rules):
    # When the device reports a fault itself
    outcome = intake_fault(envelope(report()), store, rules)
    # Then its ticket was raised by the device, through the device channel
    ticket = store.tickets[outcome.ticket_id]
    assert (ticket.channel, ticket.raised_by) == (Channel.DEVICE, f"device:{THING}")


def test_a_report_of_an_open_code_becomes_an_occurrence(store, rules, deps):
    # Given the device already opened a ticket for FAN-STALL
    device_outcome = intake_fault(envelope(report()), store, rules)
    # When the customer reports the same symptom
    raised = raise_ticket(CUSTOMER, ask(), key=None, deps=deps, now=NOW)
    # Then they are told it is already being handled, on the same ticket, as a 2nd occurrence
    assert raised.outcome is RaiseOutcome.ALREADY_BEING_HANDLED
    assert raised.ticket.ticket_id == device_outcome.ticket_id
    assert len(store.tickets) == 1 and raised.ticket.occurrences == 2
    assert store.occurrences[device_outcome.ticket_id][1].channel is Channel.APP
    assert store.timeline[device_outcome.ticket_id][-1].kind == "reported_again"


def test_a_retry_with_the_same_key_returns_the_first_ticket(store, deps):
    # Given a ticket raised with an Idempotency-Key
    first = raise_ticket(CUSTOMER, ask(), key="key-00000001", deps=deps, now=NOW)
    # When the app retries with the same key and body
    again = raise_ticket(CUSTOMER, ask(), key="key-00000001", deps=deps, now=NOW)
    # Then it is the same ticket, answered as a duplicate, and only one exists
    assert again.outcome is RaiseOutcome.DUPLICATE_REQUEST
    assert again.ticket.ticket_id == first.ticket.ticket_id and len(store.tickets) == 1


def test_the_same_key_with_another_body_is_refused(deps):
    raise_ticket(CUSTOMER, ask(), key="key-00000001", deps=deps, now=NOW)
    with pytest.raises(IdempotencyKeyReused):
        raise_ticket(CUSTOMER, ask("TEMP-HIGH"), key="key-00000001", deps=deps, now=NOW)


def test_retries_that_race_past_the_key_check_still_make_one_ticket(store, deps):
    # Given a first request that opened the ticket
    first = raise_ticket(CUSTOMER, ask(), key="key-race-0001", deps=deps, now=NOW)
    # When a concurrent retry had read the key before the first one wrote it
    real = store.load_request
    reads: list[RequestMark | None] = []

    def racing(scope: str, key: str) -> RequestMark | None:
        found = None if not reads else real(scope, key)
        reads.append(found)
        return found

    store.load_request = racing  # type: ignore[method-assign]
    again = raise_ticket(CUSTOMER, ask(), key="key-race-0001", deps=deps, now=NOW)
    # Then its write finds the ticket the key's fault id names: the first answer, one ticket
    assert again.outcome is RaiseOutcome.DUPLICATE_REQUEST
    assert again.ticket.ticket_id == first.ticket.ticket_id and len(store.tickets) == 1


def test_a_racing_retry_with_another_body_is_refused(store, deps):
    raise_ticket(CUSTOMER, ask(), key="key-race-0002", deps=deps, now=NOW)
    real = store.load_request
    calls: list[int] = []

    def racing(scope: str, key: str) -> RequestMark | None:
        calls.append(1)
        return None if len(calls) == 1 else real(scope, key)

    store.load_request = racing  # type: ignore[method-assign]
    # When a different request with the key raced, on another device of the customer
    store.devices["ac-0009"] = store.devices[THING].model_copy(update={"thing": "ac-0009"})
    with pytest.raises(IdempotencyKeyReused):
        raise_ticket(CUSTOMER, ask(thing="ac-0009"), key="key-race-0002", deps=deps, now=NOW)
    assert len(store.tickets) == 1


def test_another_customers_device_is_not_found(deps):
    with pytest.raises(DeviceNotFound):
        raise_ticket(OTHER_CUSTOMER, ask(), key=None, deps=deps, now=NOW)
    with pytest.raises(DeviceNotFound):
        raise_ticket(CUSTOMER, ask(thing="no-such-thing"), key=None, deps=deps, now=NOW)


def test_a_customer_may_not_claim_an_agents_channel(deps):
    with pytest.raises(ChannelNotAllowed, match="phone"):
        raise_ticket(CUSTOMER, ask(channel=Channel.PHONE), key=None, deps=deps, now=NOW)


def test_an_unknown_code_is_refused_and_free_text_is_unclassified(store, deps):
    with pytest.raises(UnknownSymptom):
        raise_ticket(CUSTOMER, ask("FAN-STAL"), key=None, deps=deps, now=NOW)
    raised = raise_ticket(CUSTOMER, ask("it smells of burning"), key=None, deps=deps, now=NOW)
    ticket = raised.ticket
    assert ticket.unclassified and ticket.fault_code.startswith("TRIAGE-") and not ticket.parts
    assert not ticket.auto_diagnose and ticket.title_en == "Reported problem (being triaged)"
    assert store.occurrences[ticket.ticket_id][0].message == "it smells of burning"


def test_two_free_text_reports_are_two_tickets(store, deps):
    raise_ticket(CUSTOMER, ask("it smells"), key=None, deps=deps, now=NOW)
    raise_ticket(CUSTOMER, ask("it beeps"), key=None, deps=deps, now=NOW)
    assert len(store.tickets) == 2


def test_classifying_reserves_parts_and_runs_the_codes_routine(world, store, deps, classify_deps):
    # Given an unclassified ticket from free text
    raised = raise_ticket(CUSTOMER, ask("fan makes no noise"), key=None, deps=deps, now=NOW)
    # When an agent classifies it as FAN-STALL
    later = NOW + timedelta(minutes=10)
    done = classify_ticket(
        AGENT, raised.ticket.ticket_id, "FAN-STALL", deps=classify_deps, now=later
    )
    # Then it is the same ticket, now FAN-STALL, with the part held, priority and SLA of the code
    ticket = store.tickets[raised.ticket.ticket_id]
    assert ticket.ticket_id == done.ticket.ticket_id and ticket.fault_code == "FAN-STALL"
    assert not ticket.unclassified and ticket.priority == "P2"
    assert ticket.sla_response_due == NOW + timedelta(hours=4)  # from when it was opened
    assert [(p.sku, p.status) for p in ticket.parts] == [("FAN-80MM", LineStatus.HELD)]
    assert store.stock[("FAN-80MM", "WH-A")].held == 1
    # And the timeline says so, the lock moved, and the code's routine was sent to the device
    kinds = [e.kind for e in store.timeline[ticket.ticket_id]]
    assert kinds[-2:] == ["classified", "parts_reserved"]
    assert (THING, "FAN-STALL") in store.locks
    assert not any(code.startswith("TRIAGE-") for _, code in store.locks)
    (published,) = world.publisher.published
    assert published[1].routine == "self_test"
    # And it cannot be classified twice
    with pytest.raises(AlreadyClassified):
        classify_ticket(AGENT, ticket.ticket_id, "TEMP-HIGH", deps=classify_deps, now=later)


def test_classifying_moves_the_escalation_schedule_to_the_new_codes_sla(store, deps, classify_deps):
    # Given an unclassified free-text ticket (P3: first escalation step at half of 24 h)
    raised = raise_ticket(CUSTOMER, ask("fan makes no noise"), key=None, deps=deps, now=NOW)
    ticket_id = raised.ticket.ticket_id
    first = store.escalations[ticket_id]
    assert first is not None and first.next_at == NOW + timedelta(hours=12)
    # When it is classified as FAN-STALL (P2: response due 4 h after opening) 10 minutes later
    classify_ticket(
        AGENT, ticket_id, "FAN-STALL", deps=classify_deps, now=NOW + timedelta(minutes=10)
    )
    # Then, in the same write, the schedule's next step is the new SLA's first: 2 h after opening
    moved = store.escalations[ticket_id]
    assert moved is not None and (moved.index, moved.bucket) == (0, first.bucket)
    assert moved.next_at == NOW + timedelta(hours=2)


def test_steps_the_old_schedule_reached_are_not_repeated_after_classifying(
    store, deps, classify_deps
):
    # Given an unclassified ticket whose first step (response at 50 % of 24 h) came due
    raised = raise_ticket(CUSTOMER, ask("fan makes no noise"), key=None, deps=deps, now=NOW)
    ticket_id = raised.ticket.ticket_id
    # When it is classified as FAN-STALL (P2) 13 hours after opening
    classify_ticket(
        AGENT, ticket_id, "FAN-STALL", deps=classify_deps, now=NOW + timedelta(hours=13)
    )
    # Then that step is not taken again; the next one (75 % of 4 h) is due at once
    moved = store.escalations[ticket_id]
    assert moved is not None and moved.index == 1
    assert moved.next_at == NOW + timedelta(hours=3)


def test_classifying_into_a_code_already_open_is_refused(store, rules, deps, classify_deps):
    intake_fault(envelope(report()), store, rules)  # FAN-STALL is open on the device
    raised = raise_ticket(CUSTOMER, ask("no air"), key=None, deps=deps, now=NOW)
    with pytest.raises(CodeAlreadyOpen):
        classify_ticket(AGENT, raised.ticket.ticket_id, "FAN-STALL", deps=classify_deps, now=NOW)


def test_only_staff_classify(deps, classify_deps):
    raised = raise_ticket(CUSTOMER, ask("no air"), key=None, deps=deps, now=NOW)
    with pytest.raises(Forbidden):
        classify_ticket(CUSTOMER, raised.ticket.ticket_id, "FAN-STALL", deps=classify_deps, now=NOW)


def test_an_agent_raises_for_a_vip_by_phone_and_a_callback_is_due(store, deps):
    # When an agent takes a VIP customer's call
    raised = raise_ticket(
        AGENT,
        ask(thing="ac-vip", channel=Channel.PHONE, for_customer="c-vip", preferred_contact="+1"),
        key=None,
        deps=deps,
        now=NOW,
    )
    # Then the ticket is the agent's, by phone, with the VIP SLA and a callback task
    ticket = raised.ticket
    assert (ticket.channel, ticket.raised_by) == (Channel.PHONE, "agent:eng-ada")
    assert ticket.customer_tier is CustomerTier.VIP and ticket.priority == "P1"
    assert ticket.sla_response_due == NOW + timedelta(hours=0.5)
    assert raised.callback is not None
    assert raised.callback.due_at == NOW + timedelta(minutes=30)
    assert store.timeline[ticket.ticket_id][-1].kind == "callback_requested"
    # And staff list it and mark it done, which the timeline records
    tasks = deps.tasks.list_tasks("open")
    assert [t.task_id for t in tasks] == [raised.callback.task_id]
    deps.tasks.complete_task(tasks[0].task_id, by="user:eng-ada", at=NOW, note="called")
    assert deps.tasks.list_tasks("open") == []
    assert store.timeline[ticket.ticket_id][-1].kind == "callback_done"


def test_no_callback_for_standard_customers_or_vip_app_tickets(deps):
    standard = raise_ticket(AGENT, ask(channel=Channel.PHONE), key=None, deps=deps, now=NOW)
    vip_app = raise_ticket(AGENT, ask(thing="ac-vip"), key=None, deps=deps, now=NOW)
    assert standard.callback is None and vip_app.callback is None


def test_an_agent_naming_the_wrong_customer_is_refused(deps):
    with pytest.raises(CustomerMismatch):
        raise_ticket(
            AGENT, ask(channel=Channel.CHAT, for_customer="c-vip"), key=None, deps=deps, now=NOW
        )


def test_the_channel_policy_is_data():
    policy = load_channel_policy()
    assert set(policy.customer_channels) == {Channel.APP, Channel.WEB}
    assert policy.allows(Channel.ONSITE, agent=True)
    assert not policy.allows(Channel.EMAIL, agent=False)
    assert policy.treatment("vip").wants_callback(Channel.CHAT)
    assert not policy.treatment("standard").wants_callback(Channel.PHONE)
    assert not policy.treatment("gold").wants_callback(Channel.PHONE)  # unknown tier: nothing


def test_the_symptom_list_names_codes_in_the_customers_language():
    catalog = load_catalog()
    english = {s.code: s.name for s in symptom_list(catalog, "en")}
    chinese = {s.code: s.name for s in symptom_list(catalog, "zh-CN", model="AC-HP")}
    assert english["FAN-STALL"] == "Cooling fan stalled"
    assert chinese["FAN-STALL"] == "散热风扇停转"
    assert set(chinese) == set(catalog.codes_for_model("AC-HP"))


def test_a_preventive_code_is_neither_offered_nor_accepted_as_a_symptom():
    # Given the catalog's preventive code (raised by the cloud from telemetry trends)
    catalog = load_catalog()
    preventive = [entry.code for entry in catalog.codes.values() if entry.preventive]
    assert preventive
    # When customers look at the symptom list, or name that code in a report
    listed = {s.code for s in symptom_list(catalog, "en")}
    # Then it is not offered, and naming it is an unknown symptom, not a ticket
    assert not listed & set(preventive)
    with pytest.raises(UnknownSymptom):
        symptom_code(preventive[0], raised_world().rules, "f-1")
