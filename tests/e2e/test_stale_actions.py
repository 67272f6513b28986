"""No stale actions, end to end on the shared local stack (`local_stack`): a ticket that is
resolved or cancelled gets no diagnostics action any more.

Device agents over the stack's Mosquitto (their own certificates), the HTTP API as an engineer,
the operator CLI to resolve or cancel, and AutoDiagnose invoked as its stream would invoke it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import boto3
import pytest
from aftercare.adapters.aws import from_item, to_item
from aftercare.adapters.diagnostics import IotDataPublisher
from aftercare.models.payloads import DiagnosticsRequest

from devices.agent import DeviceAgent
from infra.cli import main as cli_main
from infra.local.provision_api import LOCAL_PASSWORD
from tests.e2e.conftest import SharedStack, Stack, device_agent_config, fresh_session, wait_for

NO_AUTO = "FLASH-WEAR"  # a catalog code that is not auto-diagnosed (RT-X)


class World:
    def __init__(self, state: dict[str, Any], state_dir: Path, outbox: Path) -> None:
        self.state = state
        self.state_dir = state_dir
        self.outbox = outbox
        self.agents: list[DeviceAgent] = []
        self.ddb = self._client("dynamodb")
        cognito = self._client("cognito-idp")
        answer = cognito.initiate_auth(
            ClientId=state["resources"]["ServiceUserPoolClient"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "eng-ada", "PASSWORD": LOCAL_PASSWORD},
        )
        self.token = str(answer["AuthenticationResult"]["IdToken"])

    def _client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.state["aws_endpoint_url"],
            region_name=self.state["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        data = json.dumps(body).encode() if body is not None else None
        request = Request(self.state["api_url"] + path, data=data, method=method, headers=headers)
        try:
            with urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    def agent(self, thing: str) -> DeviceAgent:
        # the shared stack's fleet-incident module sends its RT-X devices a reset campaign:
        # what is still queued for this one is not this module's
        fresh_session(self.state, thing)
        agent = DeviceAgent(device_agent_config(self.state, thing, self.outbox))
        assert agent.start(connect_timeout=10)
        self.agents.append(agent)
        return agent

    def ticket_for(self, thing: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            rows = self.get(f"/tickets?thing={thing}")
            return next((r for r in rows if r["fault_code"] == NO_AUTO), None)

        return wait_for(find, timeout=30, what=f"{NO_AUTO} ticket on {thing}")

    def set_status(self, ticket_id: str, status: str) -> None:
        """The operator CLI's `tickets set-status`: one of the paths that close a ticket."""
        argv = ["tickets", "set-status", ticket_id, status, "--reason", "e2e", "--json"]
        assert cli_main([*argv, "--state-dir", str(self.state_dir)]) == 0

    def diagnostic(self, request_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            record = self.get(f"/diagnostics/{request_id}")
            return record if record["status"] == status else None

        return wait_for(probe, timeout=timeout, interval=0.2, what=f"{request_id} {status}")

    def parked_answers(self, reason: str, request_id: str) -> list[dict[str, Any]]:
        items = self.ddb.scan(TableName=self.state["resources"]["ParkedTable"])["Items"]
        found = [from_item(i) for i in items]
        return [
            p
            for p in found
            if p["source"] == "diagnostics"
            and p["reason"] == reason
            and request_id in str(p.get("payload", ""))
        ]

    def ticket_item(self, ticket_id: str) -> dict[str, Any]:
        key = {"pk": {"S": f"TICKET#{ticket_id}"}, "sk": {"S": "META"}}
        table = self.state["resources"]["TicketsTable"]
        return from_item(self.ddb.get_item(TableName=table, Key=key)["Item"])

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        url = self.state["functions"][function]["invoke_url"]
        request = Request(url, data=json.dumps(event).encode(), method="POST")
        with urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def send_as_cloud(self, thing: str, request: DiagnosticsRequest) -> None:
        """Publish a request on the device's command topic as the functions do."""
        url = self.state["iot_data_url"]
        iot_data = boto3.client(
            "iot-data",
            endpoint_url=url,
            region_name=self.state["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        IotDataPublisher(endpoint=url, iot_data=iot_data).publish(thing, request)


@pytest.fixture(scope="module")
def module_world(
    shared_stack: SharedStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The module's clients and device agents on the shared stack (its devices rt-x-0045/49/53
    and its FLASH-WEAR tickets are no other shared-stack test's)."""
    stack = shared_stack.get()
    environment = World(
        stack.state, stack.stack.state_dir, tmp_path_factory.mktemp("stale") / "outbox"
    )
    yield environment
    for agent in environment.agents:
        agent.stop(drain_timeout=2)


@pytest.fixture
def world(local_stack: Stack, module_world: World) -> World:
    return module_world


def diag_lines(agent: DeviceAgent, request_id: str) -> list[str]:
    return [line for line in list(agent.state.log) if f"request={request_id}" in line]


def test_resolving_cancels_a_pending_diagnostic_and_its_late_answer_is_parked(world):
    # Given a device with a ticket and a pending diagnostic it has not received (offline)
    thing = "rt-x-0045"
    agent = world.agent(thing)
    agent.raise_fault(NO_AUTO)
    ticket = world.ticket_for(thing)
    agent.go_offline()
    status, started = world.call(
        "POST", f"/tickets/{ticket['ticket_id']}/diagnostics", {"timeout_s": 120}
    )
    assert status == 202
    request_id = started["request_id"]
    # When the ticket is resolved (operator CLI)
    world.set_status(ticket["ticket_id"], "resolved")
    # Then the pending diagnostic is cancelled, with when and why
    record = world.diagnostic(request_id, "cancelled")
    assert record["cancelled_at"] and record["detail"] == "ticket resolved"
    # And when the device comes back it gets the cancel; the answer it had already sent to
    # the request (delivered first from its session) is parked as request_cancelled
    agent.go_online()
    wait_for(
        lambda: agent.state.is_cancelled(request_id, datetime.now(UTC)),
        timeout=20,
        what="the device hearing the cancel",
    )
    (parked,) = wait_for(
        lambda: world.parked_answers("request_cancelled", request_id),
        timeout=20,
        what="the late answer parked",
    )
    assert parked["thing"] == thing
    # And nothing was applied to the ticket: no result on its timeline, still resolved
    view = world.get(f"/tickets/{ticket['ticket_id']}")
    kinds = [e["kind"] for e in view["timeline"]]
    assert view["status"] == "resolved" and "diagnostics_result" not in kinds
    assert "diagnostics_cancelled" in kinds
    assert world.get(f"/diagnostics/{request_id}")["status"] == "cancelled"


def test_a_device_ignores_a_request_it_was_told_is_cancelled(world):
    # Given a device that has heard the cancel of its diagnostic (its ticket was cancelled)
    thing = "rt-x-0049"
    agent = world.agent(thing)
    agent.raise_fault(NO_AUTO)
    ticket = world.ticket_for(thing)
    agent.go_offline()
    _, started = world.call(
        "POST", f"/tickets/{ticket['ticket_id']}/diagnostics", {"timeout_s": 120}
    )
    request_id = started["request_id"]
    world.set_status(ticket["ticket_id"], "cancelled")
    world.diagnostic(request_id, "cancelled")
    agent.go_online()
    wait_for(lambda: agent.state.is_cancelled(request_id, datetime.now(UTC)), what="cancel heard")
    wait_for(lambda: world.parked_answers("request_cancelled", request_id), what="first answer")
    ran_before = len(diag_lines(agent, request_id))
    # When the same request reaches it again (a redelivery), followed by a marker request
    request = DiagnosticsRequest(
        request_id=request_id,
        routine=started["routine"],
        params=started.get("params") or {},
        expires_at=datetime.fromisoformat(started["expires_at"]),
    )
    world.send_as_cloud(thing, request)
    marker = DiagnosticsRequest(
        request_id="T-MARKER0000_0000000000000001",
        routine="self_test",
        expires_at=datetime.now(UTC) + timedelta(minutes=1),
    )
    world.send_as_cloud(thing, marker)
    # Then the device answers the marker (so it has handled the redelivery before it) ...
    wait_for(lambda: diag_lines(agent, marker.request_id), timeout=20, what="marker answered")
    # ... and did not run or answer the cancelled request again
    assert len(diag_lines(agent, request_id)) == ran_before
    assert len(world.parked_answers("request_cancelled", request_id)) == 1


def test_autodiagnose_acting_on_a_ticket_resolved_meanwhile_sends_nothing(world):
    # Given a device with a ticket, resolved before AutoDiagnose gets to the ticket's record
    thing = "rt-x-0053"
    agent = world.agent(thing)
    agent.raise_fault(NO_AUTO)
    ticket = world.ticket_for(thing)
    opened = world.ticket_item(ticket["ticket_id"])
    world.set_status(ticket["ticket_id"], "resolved")
    # When AutoDiagnose receives the INSERT record with the ticket as it was opened (its code
    # marked auto-diagnose, as the catalog marks e.g. SENSOR-DRIFT)
    image = {**opened, "auto_diagnose": True, "routine": "self_test"}
    record = {
        "eventID": "stale-1",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": world.state["region"],
        "dynamodb": {
            "ApproximateCreationDateTime": time.time(),
            "Keys": {"pk": {"S": opened["pk"]}, "sk": {"S": "META"}},
            "NewImage": to_item(image),
            "SequenceNumber": "1",
            "SizeBytes": 1,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
    }
    answer = world.invoke("AutoDiagnoseFunction", {"Records": [record]})
    # Then it succeeds without recording or sending anything: 0 actions on a resolved ticket
    assert answer == {"batchItemFailures": []}
    assert world.get(f"/tickets/{ticket['ticket_id']}/diagnostics")["diagnostics"] == []
    log = Path(world.state["functions"]["AutoDiagnoseFunction"]["log"]).read_text()
    skipped = [line for line in log.splitlines() if "ticket no longer active" in line]
    assert any(ticket["ticket_id"] in line for line in skipped)
    time.sleep(1.5)
    assert not [line for line in list(agent.state.log) if line.split(" ", 1)[1].startswith("DIAG")]
