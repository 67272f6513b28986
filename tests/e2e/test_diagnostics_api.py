"""Support API and remote diagnostics, end to end on one local stack (module-scoped).

Real Cognito tokens from the stack's moto user pool, the local HTTP API gateway, device agents
over the stack's Mosquitto, the diagnostics rule, queue, functions and sweeper (run every
second here), and a schema-driven fuzz of the committed OpenAPI document.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import boto3
import paho.mqtt.client as mqtt
import pytest
from aftercare.adapters.notifications_store import DynamoNotificationStore
from aftercare.domain.notifications import (
    Survey,
)
from aftercare.domain.surveys import survey_id_for
from aftercare.models.tickets import TicketSummary
from paho.mqtt.enums import CallbackAPIVersion

from devices.agent import DeviceAgent
from devices.config import parse_broker_url
from infra.cli import main as cli_main
from infra.local.broker_auth import issue_device_credentials
from infra.local.provision_api import LOCAL_PASSWORD
from infra.local.stack import LocalStack
from tests.e2e.conftest import device_agent_config, http_api_functions, publish_as, wait_for
from tests.e2e.fuzzing import api_operations, server_errors
from tests.integration.mosquitto_fixture import Recorder

ROOT = Path(__file__).resolve().parents[2]
ONSITE = "needs_onsite_dispatch"
NO_AUTO = "FLASH-WEAR"  # a catalog code that is not auto-diagnosed (RT-X)


class Api:
    """The stack's HTTP API as one user."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, answer, _ = self.exchange(method, path, body)
        return status, answer

    def exchange(self, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
        """Status, JSON body and response headers."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null"), response.headers
        except HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null"), exc.headers

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body


class Env:
    def __init__(self, state: dict[str, Any], state_dir: Path, outbox: Path) -> None:
        self.state = state
        self.state_dir = state_dir
        self.outbox = outbox
        self.agents: list[DeviceAgent] = []
        self.ddb = boto3.client(
            "dynamodb",
            endpoint_url=state["aws_endpoint_url"],
            region_name=state["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def token(self, user: str, kind: str = "IdToken") -> str:
        cognito = boto3.client(
            "cognito-idp",
            endpoint_url=self.state["aws_endpoint_url"],
            region_name=self.state["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        answer = cognito.initiate_auth(
            ClientId=self.state["resources"]["ServiceUserPoolClient"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user, "PASSWORD": LOCAL_PASSWORD},
        )
        return str(answer["AuthenticationResult"][kind])

    def api(self, user: str | None) -> Api:
        return Api(self.state["api_url"], self.token(user) if user else None)

    def api_with_access_token(self, user: str) -> Api:
        """The same user holding the Cognito *access* token (groups, no customer id)."""
        return Api(self.state["api_url"], self.token(user, "AccessToken"))

    def owner_of(self, thing: str) -> str:
        table = self.state["resources"]["DevicesTable"]
        item = self.ddb.get_item(TableName=table, Key={"thing": {"S": thing}})["Item"]
        return str(item["customer_id"]["S"])

    def sent_survey(self, ticket: dict[str, Any]) -> str:
        """A survey on `ticket`, sent to its owner (written the way the notifier writes it)."""
        resources = self.state["resources"]
        store = DynamoNotificationStore(
            table=resources["NotificationsTable"],
            tickets_table=resources["TicketsTable"],
            customers_table=resources["CustomersTable"],
            ddb=self.ddb,
        )
        now = datetime.now(UTC)
        survey = Survey(
            survey_id=survey_id_for(ticket["ticket_id"]),
            ticket_id=ticket["ticket_id"],
            customer_id=ticket["customer_id"],
            facts=TicketSummary.model_validate(ticket),
            created_at=now,
            due_at=now,
        )
        store.schedule_survey(survey)
        store.settle_survey(survey.survey_id, "sent", sent_at=now, retry_at=None)
        return survey.survey_id

    def agent(self, thing: str, remote_fixable: frozenset[str] = frozenset()) -> DeviceAgent:
        agent = DeviceAgent(
            device_agent_config(self.state, thing, self.outbox, remote_fixable_codes=remote_fixable)
        )
        assert agent.start(connect_timeout=10)
        self.agents.append(agent)
        return agent

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish as the device whose topic this is (the broker allows nothing else)."""
        thing = topic.split("/")[2]
        publish_as(self.state, thing, [{"topic": topic, "payload": payload, "qos": 1}])

    def parked(self, reason: str) -> list[dict[str, Any]]:
        items = self.ddb.scan(TableName=self.state["resources"]["ParkedTable"])["Items"]
        return [
            {k: next(iter(v.values())) for k, v in item.items()}
            for item in items
            if item["source"]["S"] == "diagnostics" and item["reason"]["S"] == reason
        ]


# The fault path, the diagnostics round trip (auto-diagnosis of new tickets, results, the
# timeout sweep) and the HTTP API; the other ~12 workers (notifications, KPIs, dispatch, stock,
# telemetry, campaigns) would only poll, ~0.16 cores for the module's minutes.
DIAGNOSTICS_FUNCTIONS = (
    "FaultIntakeFunction",
    "DeadLetterRecorderFunction",
    "AutoDiagnoseFunction",
    "DiagnosticsResultFunction",
    "DiagnosticsSweeperFunction",
    *http_api_functions(),
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    workdir = tmp_path_factory.mktemp("diagnostics")
    stack = LocalStack(
        ROOT,
        workdir / "state",
        # Local only: the template's sweep rate cannot go below EventBridge's minute.
        schedule_seconds={"DiagnosticsSweeperFunction": 1},
        only_functions=DIAGNOSTICS_FUNCTIONS,
    )
    try:
        environment = Env(stack.start(), workdir / "state", workdir / "outbox")
        yield environment
        for agent in environment.agents:
            agent.stop(drain_timeout=2)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def engineer(env: Env) -> Api:
    return env.api("eng-ada")


def ticket_for(api: Api, thing: str, code: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        rows = api.get(f"/tickets?thing={thing}")
        return next((r for r in rows if r["fault_code"] == code), None)

    return wait_for(find, timeout=30, what=f"{code} ticket on {thing}")


def diagnostic(api: Api, request_id: str, done: Callable[[dict[str, Any]], bool], timeout=30):
    def probe() -> dict[str, Any] | None:
        record = api.get(f"/diagnostics/{request_id}")
        return record if done(record) else None

    return wait_for(probe, timeout=timeout, interval=0.1, what=f"diagnostic {request_id}")


def settled(record: dict[str, Any]) -> bool:
    return record["status"] != "pending"


# --------------------------------------------------------------------------- access


def test_unauthenticated_calls_are_401_and_the_document_is_public(env):
    assert env.api(None).call("GET", "/tickets")[0] == 401
    assert Api(env.state["api_url"], "not-a-jwt").call("GET", "/tickets")[0] == 401
    status, document = env.api(None).call("GET", "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")


def test_tokens_carry_the_users_groups_and_customer(env):
    assert env.api("eng-ada").get("/me")["groups"] == ["engineers"]
    me = env.api("cust-0001").get("/me")
    assert me == {"username": "cust-0001", "groups": ["customers"], "customer_id": "c-0001"}


# --------------------------------------------------------------------------- round trips


def test_an_engineer_runs_a_diagnostic_and_sees_the_result(env, engineer):
    # Given a device with an open ticket that is not auto-diagnosed
    thing = "rt-x-0005"
    env.agent(thing).raise_fault(NO_AUTO, readings={"wear_pct": 91})
    ticket = ticket_for(engineer, thing, NO_AUTO)
    # When an engineer runs a sensor snapshot on it
    status, started = engineer.call(
        "POST", f"/tickets/{ticket['ticket_id']}/diagnostics", {"routine": "sensor_snapshot"}
    )
    assert status == 202 and started["status"] == "pending"
    record = diagnostic(engineer, started["request_id"], settled)
    # Then the device's answer is on the diagnostic and on the ticket's timeline
    assert record["status"] == "completed" and record["result"]["status"] == "passed"
    assert record["result"]["findings"]["readings"]["wear_pct"] == 91
    assert 0 < record["latency_ms"] < 5000
    view = engineer.get(f"/tickets/{ticket['ticket_id']}")
    assert "diagnostics_result" in [e["kind"] for e in view["timeline"]]
    assert [d["request_id"] for d in view["diagnostics"]] == [started["request_id"]]
    device = engineer.get(f"/devices/{thing}")
    assert device["last_seen"] and device["active_tickets"] == 1


def test_a_remotely_fixable_fault_is_fixed_with_no_engineer_and_its_parts_released(env, engineer):
    # Given a device that can clear its sensor drift itself
    thing = "ac-hp-0008"
    env.agent(thing, remote_fixable=frozenset({"SENSOR-DRIFT"})).raise_fault("SENSOR-DRIFT")
    # When the ticket opens (a part is held for it)
    ticket = ticket_for(engineer, thing, "SENSOR-DRIFT")

    # Then the catalog's remedy runs by itself, is verified, and the ticket resolves remotely
    def resolved() -> dict[str, Any] | None:
        view = engineer.get(f"/tickets/{ticket['ticket_id']}")
        return view if view["status"] == "resolved" else None

    view = wait_for(resolved, timeout=30, what="remote fix")
    assert view["resolution"] == "remote"
    outcomes = [(d["purpose"], d["routine"], d["outcome"]) for d in view["diagnostics"]]
    assert outcomes == [
        ("auto", "reset_component", "verifying"),
        ("verify", "self_test", "remote_fix"),
    ]
    # And the part held when it opened went back to stock
    assert view["parts"] and all(p["status"] == "released" for p in view["parts"])


def test_an_offline_device_answers_after_reconnecting(env, engineer):
    # Given a device with a ticket, which then loses its connection
    thing = "rt-x-0009"
    agent = env.agent(thing)
    agent.raise_fault(NO_AUTO)
    ticket = ticket_for(engineer, thing, NO_AUTO)
    agent.go_offline()
    # When an engineer asks it for a self-test
    status, started = engineer.call(
        "POST",
        f"/tickets/{ticket['ticket_id']}/diagnostics",
        {"routine": "self_test", "timeout_s": 60},
    )
    assert status == 202
    time.sleep(2)
    assert engineer.get(f"/diagnostics/{started['request_id']}")["status"] == "pending"
    # Then it answers once it is back (its persistent session kept the request)
    agent.go_online()
    record = diagnostic(engineer, started["request_id"], settled)
    assert record["status"] == "completed" and record["result"]["status"] == "failed"
    assert record["result"]["findings"]["active_faults"] == [NO_AUTO]


def test_an_expired_request_is_ignored_by_the_device_and_times_out(env, engineer):
    # Given an offline device with a ticket
    thing = "rt-x-0013"
    agent = env.agent(thing)
    agent.raise_fault(NO_AUTO)
    ticket = ticket_for(engineer, thing, NO_AUTO)
    agent.go_offline()
    # When a request with a 5 s deadline is not answered in time
    status, started = engineer.call(
        "POST", f"/tickets/{ticket['ticket_id']}/diagnostics", {"timeout_s": 5}
    )
    assert status == 202
    record = diagnostic(engineer, started["request_id"], settled, timeout=30)
    # Then the sweeper times it out and flags the ticket for on-site dispatch
    assert record["status"] == "timed_out"
    assert ONSITE in engineer.get(f"/tickets/{ticket['ticket_id']}")["flags"]
    # And the device, back online, ignores the expired request (nothing answers it)
    agent.go_online()
    assert agent.wait_ready(10)
    time.sleep(2)
    assert engineer.get(f"/diagnostics/{started['request_id']}")["status"] == "timed_out"
    assert not [p for p in env.parked("late_answer") if started["request_id"] in p["payload"]]


def test_answers_from_another_device_or_malformed_are_parked_and_change_nothing(env, engineer):
    # Given a pending request to a device that is not answering
    thing, intruder = "rt-x-0017", "rt-x-0021"
    agent = env.agent(thing)
    agent.raise_fault(NO_AUTO)
    ticket = ticket_for(engineer, thing, NO_AUTO)
    agent.go_offline()
    _, started = engineer.call(
        "POST", f"/tickets/{ticket['ticket_id']}/diagnostics", {"timeout_s": 120}
    )
    request_id = started["request_id"]
    # When another device answers it, and the addressed device sends garbage
    forged = {
        "request_id": request_id,
        "status": "passed",
        "findings": {},
        "remedied": True,
        "completed_at": "2026-01-01T00:00:00+00:00",
    }
    env.publish(f"cmd/aftercare/{intruder}/diagnostics/res", json.dumps(forged).encode())
    env.publish(f"cmd/aftercare/{thing}/diagnostics/res", b'{"request_id": "' + b"x" * 3)
    # Then both are parked with their reasons, and the request is still pending
    wait_for(lambda: env.parked("thing_mismatch"), timeout=20, what="parked foreign answer")
    wait_for(lambda: env.parked("malformed_json"), timeout=20, what="parked malformed answer")
    (foreign,) = [p for p in env.parked("thing_mismatch") if request_id in p["detail"]]
    assert foreign["thing"] == intruder
    assert engineer.get(f"/diagnostics/{request_id}")["status"] == "pending"


# --------------------------------------------------------------------------- customers


def test_a_customer_cannot_read_or_act_on_other_customers_tickets(env, engineer):
    # Given a ticket on the customer's own device and one on someone else's
    own_thing, other_thing = "rt-x-0001", "rt-x-0029"  # c-0001's, c-0029's
    env.agent(own_thing).raise_fault(NO_AUTO)
    env.agent(other_thing).raise_fault(NO_AUTO)
    own = ticket_for(engineer, own_thing, NO_AUTO)
    other = ticket_for(engineer, other_thing, NO_AUTO)
    _, other_diag = engineer.call("POST", f"/tickets/{other['ticket_id']}/diagnostics", {})
    customer = env.api("cust-0001")
    # Then the customer lists and reads only their own
    listed = customer.get("/tickets")
    assert own["ticket_id"] in {t["ticket_id"] for t in listed}
    assert {t["customer_id"] for t in listed} == {"c-0001"}
    assert customer.get(f"/tickets/{own['ticket_id']}")["thing"] == own_thing
    assert customer.get(f"/devices/{own_thing}")["thing"] == own_thing
    # And everything of the other customer's is simply not there
    assert customer.call("GET", f"/tickets/{other['ticket_id']}")[0] == 404
    assert customer.call("GET", f"/tickets/{other['ticket_id']}/diagnostics")[0] == 404
    assert customer.call("GET", f"/devices/{other_thing}")[0] == 404
    assert customer.call("GET", f"/diagnostics/{other_diag['request_id']}")[0] == 404
    assert customer.get(f"/tickets?thing={other_thing}") == []
    # And a customer may not start diagnostics, on any ticket
    for ticket in (own, other):
        status, body = customer.call("POST", f"/tickets/{ticket['ticket_id']}/diagnostics", {})
        assert status == 403 and body["reason"] == "forbidden"
    # And another customer does not see this customer's ticket either
    neighbour = env.api("cust-0002")
    assert neighbour.call("GET", f"/tickets/{own['ticket_id']}")[0] == 404


# --------------------------------------------------------------------------- token policy


def test_access_tokens_are_refused_whoever_holds_them(env):
    # Given staff and a customer holding access tokens (which the JWT authorizer accepts)
    for user in ("eng-ada", "mgr-grace", "cust-0001"):
        api = env.api_with_access_token(user)
        # Then every function refuses them with the reason, before reading anything
        for path in ("/me", "/tickets", "/surveys/S-AAAAAAAAAAAA"):
            status, body = api.call("GET", path)
            assert (status, body["reason"]) == (401, "id_token_required"), (user, path, body)


def test_no_cross_customer_reads_with_any_token_type(env, engineer):
    # Given a ticket, its device, diagnostics and a sent survey of c-0001 and of another customer
    mine_thing, theirs_thing = "rt-x-0081", "rt-x-0033"  # c-0001's, c-0033's
    assert env.owner_of(mine_thing) == "c-0001" != env.owner_of(theirs_thing)
    env.agent(mine_thing).raise_fault(NO_AUTO)
    env.agent(theirs_thing).raise_fault(NO_AUTO)
    mine = engineer.get(f"/tickets/{ticket_for(engineer, mine_thing, NO_AUTO)['ticket_id']}")
    theirs = engineer.get(f"/tickets/{ticket_for(engineer, theirs_thing, NO_AUTO)['ticket_id']}")
    my_survey, their_survey = env.sent_survey(mine), env.sent_survey(theirs)
    reads = [
        f"/tickets/{theirs['ticket_id']}",
        f"/tickets/{theirs['ticket_id']}/diagnostics",
        f"/devices/{theirs_thing}",
        f"/surveys/{their_survey}",
        f"/tickets?thing={theirs_thing}",
        "/tickets?limit=200",
    ]
    # When cust-0001 tries every read with an ID token and with an access token
    leaks = []
    for api in (env.api("cust-0001"), env.api_with_access_token("cust-0001")):
        for path in reads:
            status, body = api.call("GET", path)
            rows = body if isinstance(body, list) else [body] if status == 200 else []
            leaks += [(path, r) for r in rows if r.get("customer_id", "c-0001") != "c-0001"]
            if status == 200 and not path.startswith("/tickets?"):
                leaks.append((path, body))
    # Then nothing of the other customer's came back, whatever the token
    assert leaks == []
    # While the owner reads their own survey with an ID token, and staff read both
    assert env.api("cust-0001").get(f"/surveys/{my_survey}")["ticket_id"] == mine["ticket_id"]
    assert env.api("cust-0001").call("GET", f"/surveys/{their_survey}")[0] == 404
    assert engineer.get(f"/surveys/{their_survey}")["survey_id"] == their_survey
    # And staff cannot answer a survey for the customer
    status, body = engineer.call("POST", f"/surveys/{my_survey}/answer", {"rating": 5})
    assert (status, body["reason"]) == (403, "forbidden")


# --------------------------------------------------------------------------- paging


def test_staff_page_through_every_ticket_with_the_cursor(env, engineer):
    # Given at least a few tickets on the stack
    for thing in ("rt-x-0037", "rt-x-0041", "rt-x-0045"):
        env.agent(thing).raise_fault(NO_AUTO)
        ticket_for(engineer, thing, NO_AUTO)
    everything = engineer.get("/tickets?limit=200")
    assert 3 <= len(everything) < 200
    # When an engineer walks the listing two at a time through the gateway
    seen: list[str] = []
    path = "/tickets?limit=2"
    while True:
        status, rows, headers = engineer.exchange("GET", path)
        assert status == 200 and len(rows) <= 2
        seen += [r["ticket_id"] for r in rows]
        cursor = headers.get("X-Next-Cursor")
        if not cursor:
            break
        path = f"/tickets?limit=2&cursor={cursor}"
    # Then it is the one-page listing, same order, each ticket once
    assert seen == [r["ticket_id"] for r in everything]
    # And a tampered cursor, or one used with other filters, is a 400 with the reason
    _, _, headers = engineer.exchange("GET", "/tickets?limit=1")
    cursor = headers["X-Next-Cursor"]
    for bad in (f"limit=1&cursor={cursor[:-3]}AAA", f"limit=1&status=open&cursor={cursor}"):
        status, body = engineer.call("GET", f"/tickets?{bad}")
        assert (status, body["reason"]) == (400, "invalid_cursor"), body
    assert engineer.call("GET", "/tickets?limit=201")[0] == 422


def test_the_cli_lists_every_page_through_the_api(env, engineer, capsys):
    state_dir = ["--state-dir", str(env.state_dir)]
    assert cli_main(["login", "--user", "eng-ada", *state_dir]) == 0
    capsys.readouterr()
    # When the CLI lists one page of one ticket, then everything one ticket a page
    assert cli_main(["tickets", "list", "--json", "--limit", "1", *state_dir]) == 0
    first = capsys.readouterr()
    assert cli_main(["tickets", "list", "--json", "--limit", "1", "--all", *state_dir]) == 0
    every = json.loads(capsys.readouterr().out)
    # Then stdout is one JSON array of the contract's keys, the cursor is on stderr
    (row,) = json.loads(first.out)
    assert "--cursor" in first.err and set(row) >= {"ticket_id", "status", "opened_at"}
    assert [r["ticket_id"] for r in every] == [
        r["ticket_id"] for r in engineer.get("/tickets?limit=200")
    ]
    (env.state_dir / "session.json").unlink()


# --------------------------------------------------------------------------- CLI


def test_the_cli_logs_in_and_runs_a_diagnostic_through_the_api(env, engineer, capsys):
    thing = "rt-x-0025"
    env.agent(thing).raise_fault(NO_AUTO)
    ticket = ticket_for(engineer, thing, NO_AUTO)
    state_dir = ["--state-dir", str(env.state_dir)]
    assert cli_main(["login", "--user", "eng-ada", *state_dir]) == 0
    capsys.readouterr()
    run = ["diag", "run", ticket["ticket_id"], "--routine", "log_excerpt", "--wait", "--json"]
    code = cli_main([*run, *state_dir])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and shown["status"] == "completed"
    assert set(shown) == {"request_id", "status", "result"}
    assert shown["result"]["findings"]["lines"]
    # And `tickets show` through the API prints exactly what the direct read prints
    assert cli_main(["tickets", "show", ticket["ticket_id"], "--json", *state_dir]) == 0
    via_api = json.loads(capsys.readouterr().out)
    (env.state_dir / "session.json").unlink()
    assert cli_main(["tickets", "show", ticket["ticket_id"], "--json", *state_dir]) == 0
    assert via_api == json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------------- fuzz


def test_a_schema_driven_fuzz_finds_no_server_errors(env, engineer):
    errors: list[str] = []
    for operation in api_operations():
        errors += server_errors(env.state["api_url"], operation, engineer.token, max_examples=25)
    assert not errors, "\n".join(errors[:10])


# --------------------------------------------------------------------------- device isolation
# The stack's broker enforces the template's IoT policy: a device acts only as itself.

NOT_AUTHORIZED = 135  # MQTT 5 PUBACK / DISCONNECT reason code 0x87


def as_device(env: Env, identity: str, topics: list[str], client_id: str | None = None):
    """A raw MQTT client connected with `identity`'s own certificate (the attacker's tool)."""
    credentials = issue_device_credentials(env.state_dir, identity)
    recorder = Recorder(
        env.state["mqtt_url"], client_id or identity, topics, credentials=credentials
    )
    return recorder.start()


def test_a_device_cannot_see_answer_or_hijack_another_devices_diagnostics(env, engineer):
    # Given a device B with a ticket, offline, and a pending diagnostics request to it
    # devices no other test in this module touches (the module shares one stack)
    victim, attacker, accomplice = "rt-x-0061", "rt-x-0065", "rt-x-0057"
    agent = env.agent(victim)
    agent.raise_fault(NO_AUTO, readings={"wear_pct": 77})
    ticket = ticket_for(engineer, victim, NO_AUTO)
    agent.go_offline()
    spy = as_device(env, attacker, ["#", f"cmd/aftercare/{victim}/#", "dt/aftercare/+/fault"])
    # (one connection per identity: the broker makes the client id the certificate's CN)
    impostor = as_device(env, accomplice, [f"cmd/aftercare/{victim}/#"], client_id=victim)
    _, started = engineer.call(
        "POST",
        f"/tickets/{ticket['ticket_id']}/diagnostics",
        {"routine": "sensor_snapshot", "timeout_s": 120},
    )
    request_id = started["request_id"]
    # When device A answers it on B's topic with its own findings
    forged = {
        "request_id": request_id,
        "status": "passed",
        "findings": {"forged": True},
        "remedied": True,
        "completed_at": "2026-01-01T00:00:00+00:00",
    }
    reason = spy.publish(f"cmd/aftercare/{victim}/diagnostics/res", json.dumps(forged).encode())
    # Then the broker refuses it, A saw nothing of B's traffic, and the request is still pending
    assert reason is not None and reason.value == NOT_AUTHORIZED
    assert spy.quiet_for(2.0) == [] and impostor.quiet_for(0.1) == []
    assert engineer.get(f"/diagnostics/{request_id}")["status"] == "pending"
    assert not [p for p in env.parked("thing_mismatch") if request_id in p["detail"]]
    # And B, back online, still has its own session: it answers, and its findings are recorded
    agent.go_online()
    record = diagnostic(engineer, request_id, settled)
    assert record["status"] == "completed" and "forged" not in record["result"]["findings"]
    assert record["result"]["findings"]["readings"]["wear_pct"] == 77
    spy.stop()
    impostor.stop()


def test_a_device_cannot_open_a_ticket_for_another(env, engineer):
    victim, attacker = "rt-x-0069", "rt-x-0073"  # untouched by the other tests here
    spy = as_device(env, attacker, [])
    report = {
        "fault_id": "forged-000001",
        "code": NO_AUTO,
        "occurred_at": "2026-01-01T00:00:00+00:00",
        "firmware": "1.0.0",
    }
    # When A publishes a fault report on B's topic
    reason = spy.publish(f"dt/aftercare/{victim}/fault", json.dumps(report).encode())
    spy.stop()
    # Then the broker refuses it and no ticket opens for B
    assert reason is not None and reason.value == NOT_AUTHORIZED
    time.sleep(3)
    assert engineer.get(f"/tickets?thing={victim}") == []


def test_anonymous_clients_and_retained_publishes_are_refused(env, tmp_path):
    ca_file = env.state["mqtt_ca_file"]
    broker = parse_broker_url(env.state["mqtt_url"])
    anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rt-x-0049")
    anonymous.tls_set(ca_certs=ca_file)
    accepted: list[bool] = []
    anonymous.on_connect = lambda *args: accepted.append(not args[3].is_failure)
    with contextlib.suppress(ssl.SSLError, OSError):
        anonymous.connect(broker.host, broker.port)
        anonymous.loop_start()
        time.sleep(2)
    anonymous.loop_stop()
    assert accepted in ([], [False])
    # A device may not leave a retained message (e.g. a standing fake request) behind
    device = as_device(env, "rt-x-0053", [])
    device.publish("dt/aftercare/rt-x-0053/telemetry", b"{}", retain=True)
    assert device.disconnects.get(timeout=5).is_failure
    device.stop()
