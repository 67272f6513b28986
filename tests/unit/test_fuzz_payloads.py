"""Fuzzing the inbound payloads (finding 5 of "Nothing lost, nothing leaked"): no fault report,
diagnostics answer or dead letter — whatever its nesting, numbers, unicode or size — crashes
the real message-handling code or is raised for a retry instead of being parked; what is
accepted can be stored in DynamoDB as it is, and every parked item fits DynamoDB's item limit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aftercare.adapters.aws import to_item
from aftercare.adapters.parked import parked_item
from aftercare.domain.diagnostics import start_diagnostic
from aftercare.domain.diagnostics_answers import handle_result_message
from aftercare.domain.intake import IntakeRules, OutcomeKind
from aftercare.domain.messages import handle_fault_message
from aftercare.domain.parking import record_dead_letter
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.models.diagnostics import Purpose
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.diagnostics import NOW as DIAG_NOW
from tests.fakes.diagnostics import FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.faults import envelope_body, store_with_device
from tests.fakes.stores import FakeParkedStore

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CATALOG = load_catalog()
RULES = IntakeRules(catalog=CATALOG, policy=load_policy(), repeat_window=timedelta(days=30))
DYNAMODB_ITEM_LIMIT = 400 * 1024
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------ JSON text, hostile included
number_literals = st.one_of(
    st.integers(min_value=-(10**50), max_value=10**50).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
    st.from_regex(r"-?[1-9][0-9]{0,60}(\.[0-9]{1,60})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
    st.integers(min_value=4290, max_value=4400).map(lambda n: "7" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "1e300", "1e-300", "-0", "0.0"]),
)
strings = st.text(max_size=40).map(json.dumps) | st.sampled_from(
    ['"\\ud800"', '"\\udfff x"', '"\\u0000"', '"😀"', '"' + "é" * 300 + '"']
)
scalars = st.one_of(number_literals, strings, st.sampled_from(["true", "false", "null"]))


def _array(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"


json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_array),
        st.lists(st.tuples(st.text(max_size=8), inner), max_size=4).map(_object),
    ),
    max_leaves=12,
)
deep = st.integers(min_value=1, max_value=12_000).map(lambda n: "[" * n + "1" + "]" * n)
huge = st.integers(min_value=0, max_value=70_000).map(lambda n: json.dumps("x" * n))
any_value = st.one_of(json_values, deep, huge)

FAULT_FIELDS = {
    "fault_id": '"fault-0001"',
    "code": '"FAN-STALL"',
    "occurred_at": '"2026-11-27T11:59:00+00:00"',
    "firmware": '"1.0.0"',
    "readings": '{"rpm": 0}',
}


@st.composite
def fault_texts(draw: st.DrawFn) -> str:
    """A fault report with one field (or one reading, or the whole payload) replaced."""
    fields = dict(FAULT_FIELDS)
    where = draw(st.sampled_from(["field", "reading", "extra", "whole", "duplicate"]))
    value = draw(any_value)
    if where == "whole":
        return value
    if where == "field":
        fields[draw(st.sampled_from(sorted(fields)))] = value
    elif where == "reading":
        fields["readings"] = _object([(draw(st.text(min_size=1, max_size=8)), value)])
    elif where == "extra":
        fields["message"] = value
    pairs = list(fields.items())
    if where == "duplicate":
        pairs.append(("code", value))
    return "{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}"


def assert_storable(item: dict[str, Any]) -> None:
    serialised = to_item(item)
    assert len(json.dumps(serialised)) < DYNAMODB_ITEM_LIMIT


@FUZZ
@given(fault_texts())
def test_no_fault_payload_crashes_intake_or_is_left_for_a_retry(text: str) -> None:
    store, parked = store_with_device(), FakeParkedStore()
    body = envelope_body(text, "ac-0001", "dt/aftercare/ac-0001/fault", NOW)
    # The real queue-message path: it must return (an exception would mean a retry)
    outcome = handle_fault_message(body, "m-1", store=store, parked=parked, rules=RULES, now=NOW)
    if outcome.kind is OutcomeKind.REJECTED:
        (message,) = parked.writes  # parked exactly once, with its reason
        assert message.reason == outcome.reason
        assert_storable(parked_item(message))
    else:
        assert outcome.kind is OutcomeKind.OPENED and not parked.writes
        (ticket,) = store.tickets.values()
        assert_storable(ticket.model_dump())  # what was accepted can be stored as it is


ANSWER_FIELDS = {
    "status": '"failed"',
    "completed_at": '"2026-11-27T12:00:00+00:00"',
    "findings": '{"temp_c": 71.5}',
    "remedied": "false",
}


@FUZZ
@given(st.sampled_from([*sorted(ANSWER_FIELDS), "finding", "whole"]), any_value)
def test_no_diagnostics_answer_crashes_the_handler(where: str, value: str) -> None:
    ticket = make_ticket()
    store, parked, publisher = FakeDiagnosticsStore(ticket), FakeParkedStore(), FakePublisher()
    record = start_diagnostic(
        store,
        publisher,
        ticket,
        routine="self_test",
        params=None,
        timeout=timedelta(minutes=5),
        actor="user:eng",
        purpose=Purpose.ENGINEER,
        now=DIAG_NOW,
    )
    fields = {"request_id": json.dumps(record.request_id), **ANSWER_FIELDS}
    if where == "finding":
        fields["findings"] = _object([("x", value)])
    elif where != "whole":
        fields[where] = value
    text = value if where == "whole" else _object([(k, v) for k, v in fields.items()])
    body = envelope_body(
        text,
        ticket.thing,
        f"cmd/aftercare/{ticket.thing}/diagnostics/res",
        DIAG_NOW,
    )
    outcome = handle_result_message(
        body,
        "m-1",
        store=store,
        publisher=publisher,
        parked=parked,
        catalog=CATALOG,
        now=DIAG_NOW,
    )
    if outcome.reason is not None:
        (message,) = parked.writes
        assert_storable(parked_item(message))
    else:
        assert not parked.writes
        assert_storable(store.records[record.request_id].model_dump())


@FUZZ
@given(st.one_of(any_value, fault_texts().map(lambda t: envelope_body(t, "t", "x", NOW))))
def test_no_dead_letter_crashes_the_recorder(body: str) -> None:
    parked = FakeParkedStore()
    record_dead_letter(body, "m-1", 6, NOW, parked)
    (message,) = parked.writes
    assert_storable(parked_item(message))
