"""Devices owned by customers, on the shared local stack, through the HTTP API with real Cognito
ID tokens: a customer claims a seeded device and sees it with its warranty; a second customer
with the same code gets 409; after a transfer the old owner loses the device (404) but keeps
the ticket opened for them, and the device's next fault opens a ticket only the new owner sees;
the CLI path with a release; eight customers racing on the stack's DynamoDB: one wins.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.health import health_item
from aftercare.adapters.ownership import DynamoOwnershipStore
from aftercare.domain.health import DeviceHealth
from aftercare.domain.ownership import add_months, load_ownership_policy, registry_item
from aftercare.domain.ports.ownership import ClaimConflict

from infra.cli import main
from infra.local.provision_api import LOCAL_PASSWORD, LocalUser, seed_users
from infra.seeding import claimable_devices
from tests.e2e.conftest import Stack, publish_as, wait_for
from tests.e2e.fuzzing import api_operations, server_errors

DEVICE = claimable_devices()[0]  # rt-x-9001, code DEMO-CLAIM-0001 (README); no other test uses it
BOXED = claimable_devices()[1]  # ev-ch-9002, code DEMO-CLAIM-0002
# Demo customers no other shared-stack test logs in as
ALICE = LocalUser("own-alice", "customers", "c-0071")
BOB = LocalUser("own-bob", "customers", "c-0072")
CAROL = LocalUser("own-carol", "customers", "c-0073")


def cognito(stack: Stack) -> Any:
    return boto3.session.Session().client(
        "cognito-idp",
        endpoint_url=stack.state["aws_endpoint_url"],
        region_name=stack.state["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # moto's dummy credentials
    )


class Api:
    """One user's calls to the stack's HTTP API."""

    def __init__(self, stack: Stack, user: LocalUser) -> None:
        self.url = str(stack.state["api_url"])
        answer = cognito(stack).initiate_auth(
            ClientId=stack.state["resources"]["ServiceUserPoolClient"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user.username, "PASSWORD": LOCAL_PASSWORD},
        )
        self.token = str(answer["AuthenticationResult"]["IdToken"])

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = Request(
            self.url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def exists(client: Any, pool: str, username: str) -> bool:
    try:
        client.admin_get_user(UserPoolId=pool, Username=username)
    except client.exceptions.UserNotFoundException:
        return False
    return True


def customers(stack: Stack) -> tuple[Api, Api]:
    """Alice and Bob logged in to the API (Carol too is created, for the CLI)."""
    pool = stack.state["resources"]["ServiceUserPool"]
    client = cognito(stack)
    missing = tuple(u for u in (ALICE, BOB, CAROL) if not exists(client, pool, u.username))
    if missing:
        seed_users(pool, stack.state["aws_endpoint_url"], stack.state["region"], users=missing)
    return Api(stack, ALICE), Api(stack, BOB)


def report_fault(stack: Stack, code: str) -> None:
    body = {
        "fault_id": f"own-{uuid.uuid4().hex[:12]}",
        "code": code,
        "occurred_at": datetime.now(UTC).isoformat(),
        "firmware": DEVICE.firmware,
    }
    topic = f"dt/aftercare/{DEVICE.thing}/fault"
    publish_as(stack.state, DEVICE.thing, [{"topic": topic, "payload": json.dumps(body), "qos": 1}])


def the_device(devices: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The claimed device among a customer's (demo customers own seeded devices too)."""
    return next((d for d in devices if d["thing"] == DEVICE.thing), None)


def ticket_of(api: Api, code: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        status, rows = api.call("GET", f"/tickets?thing={DEVICE.thing}")
        assert status == 200
        return next((r for r in rows if r["fault_code"] == code), None)

    return wait_for(find, timeout=60, what=f"{code} ticket on {DEVICE.thing}")


def put_fan_health(stack: Stack, heard: datetime) -> None:
    """The device's health item as the telemetry function writes it: its fan past the RT-X's
    rated life, advised this period (what telemetry does not yet send on the shared stack)."""
    health = DeviceHealth(
        thing=DEVICE.thing,
        model=DEVICE.model,
        customer_id=ALICE.customer_id,
        firmware=DEVICE.firmware,
        uptime_s=60,
        first_seen=heard,
        last_seen=heard,
        last_sent_at=heard,
        fan_hours=51000.0,
        advised={"fan-preventive": "2026-01-01/90d"},
        advised_at={"fan-preventive": heard},
    )
    stack.target.client("dynamodb").put_item(
        TableName=stack.target.resource("DeviceHealthTable"), Item=to_item(health_item(health))
    )


def test_claim_transfer_and_who_sees_which_ticket(local_stack: Stack) -> None:
    alice, bob = customers(local_stack)
    claim = {"serial": DEVICE.serial, "code": "DEMO-CLAIM-0001"}
    # When Alice claims the seeded device with its code
    status, claimed = alice.call("POST", "/devices/claim", claim)
    # Then it is hers, with the model's warranty from today
    assert status == 201, claimed
    months = load_ownership_policy().warranty_months.months_for(DEVICE.model)
    today = datetime.now(UTC).date()
    assert claimed["warranty_until"] == add_months(today, months).isoformat()
    status, mine = alice.call("GET", "/me/devices")
    assert status == 200
    device = the_device(mine)
    assert device is not None and device["warranty"]["in_warranty"] is True
    assert device["warranty"]["until"] == claimed["warranty_until"] and device["advice"] == []
    # When its telemetry's health item says a fan replacement was advised to Alice
    heard = datetime.now(UTC).replace(microsecond=0)
    put_fan_health(local_stack, heard)
    # Then her list shows the advice with its part and price, and when the device was heard
    status, mine = alice.call("GET", "/me/devices")
    device = the_device(mine)
    assert status == 200 and device is not None
    assert [(a["rule"], a["part"]) for a in device["advice"]] == [("fan-preventive", "FAN-80MM")]
    assert device["advice"][0]["price"] is not None
    assert datetime.fromisoformat(device["last_seen"]) == heard
    # And Bob, with the same code, is told it is taken
    status, refused = bob.call("POST", "/devices/claim", claim)
    assert (status, refused["reason"]) == (409, "already_claimed")

    # Given a fault from the device while Alice owns it
    report_fault(local_stack, "FLASH-WEAR")
    before = ticket_of(alice, "FLASH-WEAR")
    wait_for(
        lambda: (the_device(alice.call("GET", "/me/devices")[1]) or {}).get("open_tickets"),
        what="Alice's open ticket in /me/devices",
    )
    # When Alice transfers the device to Bob, naming him by e-mail
    status, moved = alice.call(  # by Bob's contact e-mail (seeded: customer72@example.com)
        "POST", f"/devices/{DEVICE.thing}/transfer", {"to_email": "customer72@example.com"}
    )
    assert status == 200 and moved["to_customer"] == "c-0072", moved
    # Then Alice no longer has the device, but keeps her ticket, cancelled with the reason
    # (its held part released): it would otherwise catch the device's next FLASH-WEAR
    assert moved["closed_tickets"] == [before["ticket_id"]], moved
    assert alice.call("GET", f"/devices/{DEVICE.thing}")[0] == 404
    assert the_device(alice.call("GET", "/me/devices")[1]) is None
    status, kept = alice.call("GET", f"/tickets/{before['ticket_id']}")
    assert status == 200 and kept["status"] == "cancelled"
    assert any(
        str(e["detail"].get("reason", "")).startswith("ownership_transferred")
        for e in kept["timeline"]
    )
    assert all(p["status"] != "held" for p in kept["parts"])
    # And Bob has the device without Alice's ticket
    status, theirs = bob.call("GET", "/me/devices")
    device = the_device(theirs)
    assert status == 200 and device is not None and device["open_tickets"] == []
    assert device["advice"] == []  # the health item's advice was Alice's
    assert bob.call("GET", f"/tickets/{before['ticket_id']}")[0] == 404

    # When the device reports a new fault after the transfer
    report_fault(local_stack, "WAN-LINKDOWN")
    after = ticket_of(bob, "WAN-LINKDOWN")
    # Then the ticket is Bob's, and Alice cannot read it
    assert bob.call("GET", f"/tickets/{after['ticket_id']}")[1]["customer_id"] == "c-0072"
    assert alice.call("GET", f"/tickets/{after['ticket_id']}")[0] == 404
    # And the same code as Alice's ticket, reported again, opens Bob's own ticket
    report_fault(local_stack, "FLASH-WEAR")
    again = ticket_of(bob, "FLASH-WEAR")
    assert again["ticket_id"] != before["ticket_id"]
    assert bob.call("GET", f"/tickets/{again['ticket_id']}")[1]["customer_id"] == "c-0072"
    listed = alice.call("GET", f"/tickets?thing={DEVICE.thing}")[1]
    assert [r["ticket_id"] for r in listed] == [before["ticket_id"]]


@pytest.fixture
def cli(local_stack: Stack, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """`aftercare …` on the shared stack; the login it makes is removed afterwards (other
    modules' CLI calls must not run as this customer)."""
    state = ["--state-dir", str(local_stack.stack.state_dir)]

    def run(*argv: str) -> tuple[int, Any, str]:
        code = main([*argv, *state])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out.strip().startswith(("{", "[")) else out, err

    yield run
    (local_stack.stack.state_dir / "session.json").unlink(missing_ok=True)


def test_a_customer_claims_lists_and_releases_a_device_with_the_cli(local_stack: Stack, cli):
    _, bob = customers(local_stack)
    code, _, err = cli("login", "--user", CAROL.username, "--password", LOCAL_PASSWORD, "--json")
    assert code == 0, err
    # A wrong code is one line on stderr with its reason
    code, _, err = cli("devices", "claim", BOXED.serial, "--code", "NOT-THE-CODE")
    assert code == 1 and "wrong_claim_code" in err and "4 attempts left" in err
    # When Carol claims the boxed device with its code
    code, claimed, err = cli(
        "devices", "claim", BOXED.serial, "--code", "DEMO-CLAIM-0002", "--json"
    )
    assert code == 0, err
    # Then `devices list --mine` shows it with the model's warranty
    code, rows, err = cli("devices", "list", "--mine", "--json")
    mine = next(r for r in rows if r["thing"] == BOXED.thing)
    assert code == 0 and mine["customer_id"] == CAROL.customer_id
    assert mine["warranty_until"] == claimed["warranty_until"] and mine["in_warranty"] is True
    # When she releases it, she gets a new code and the device leaves her list
    code, released, err = cli("devices", "transfer", BOXED.thing, "--release", "--json")
    assert code == 0 and released["claim_code"], err
    assert BOXED.thing not in {r["thing"] for r in cli("devices", "list", "--mine", "--json")[1]}
    # And the next owner claims it with that code, keeping the first activation's warranty
    status, again = bob.call(
        "POST", "/devices/claim", {"thing": BOXED.thing, "code": released["claim_code"]}
    )
    assert status == 201 and again["warranty_until"] == claimed["warranty_until"]


def test_a_schema_driven_fuzz_of_the_ownership_routes_finds_no_server_errors(local_stack: Stack):
    _, bob = customers(local_stack)
    ownership = [
        op
        for op in api_operations()
        if op.path in {"/devices/claim", "/devices/{thing}/transfer", "/me/devices"}
    ]
    assert len(ownership) == 3
    errors: list[str] = []
    for operation in ownership:
        errors += server_errors(local_stack.state["api_url"], operation, bob.token, max_examples=15)
    assert errors == []


def test_customers_racing_for_one_code_on_the_stacks_dynamodb_exactly_one_wins(
    local_stack: Stack,
) -> None:
    # Given eight customers who all read ac-hp-9004 as unclaimed, with its right code
    racers = [f"c-{n:04d}" for n in range(73, 81)]
    store = DynamoOwnershipStore(
        claims_table=local_stack.target.resource("ClaimsTable"),
        devices_table=local_stack.target.resource("DevicesTable"),
        customers_table=local_stack.target.resource("CustomersTable"),
        ddb=local_stack.target.client("dynamodb"),
    )
    seeded = claimable_devices()[3]
    state = store.claim_state(serial=seeded.serial)
    assert state is not None and not state.claimed
    now = datetime.now(UTC)
    barrier = threading.Barrier(len(racers))

    def race(customer_id: str) -> str:
        item = registry_item(state, customer_id, now.date(), add_months(now.date(), 24))
        mine = DynamoOwnershipStore(
            claims_table=store.tables.claims,
            devices_table=store.tables.devices,
            customers_table=store.tables.customers,
            ddb=local_stack.target.client("dynamodb"),
        )
        barrier.wait()
        try:
            mine.claim(state, item, customer_id, now, limit=5)
        except ClaimConflict:
            return "lost"
        return "won"

    # When they all send the claim transaction at once
    with ThreadPoolExecutor(len(racers)) as pool:
        outcomes = dict(zip(racers, pool.map(race, racers), strict=True))
    # Then exactly one owns the device, and it is on nobody else's list
    winners = [c for c, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1, outcomes
    assert (store.device(seeded.thing) or {})["customer_id"] == winners[0]
    assert [c for c in racers if any(d["thing"] == seeded.thing for d in store.devices_of(c))] == (
        winners
    )


def test_support_reissues_a_code_with_the_cli_and_it_claims_the_device(local_stack: Stack, cli):
    _, bob = customers(local_stack)
    device = claimable_devices()[2]  # ic-300-9003
    code, issued, err = cli("devices", "reissue-code", device.serial, "--json")
    assert code == 0 and issued["serial"] == device.serial, err
    status, claimed = bob.call(
        "POST", "/devices/claim", {"serial": device.serial, "code": issued["claim_code"]}
    )
    assert status == 201 and claimed["thing"] == device.thing
    code, _, err = cli("devices", "reissue-code", device.serial)
    assert code == 1 and "already_claimed" in err
