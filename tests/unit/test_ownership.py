"""Devices owned by customers: the rules (codes, warranty, requests) and the use cases on moto
(`mock_aws`, ClaimsTable, DevicesTable, CustomersTable and TicketsTable from template.yaml),
where the conditional transactions decide races, plus the Owners API's status codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.health import DynamoHealthReader, health_item, healths_request
from aftercare.adapters.ownership import DynamoOwnershipStore, claim_parts, wrong_code_update
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.domain.access import Caller
from aftercare.domain.health import DeviceHealth
from aftercare.domain.maintenance import load_maintenance_rules
from aftercare.domain.ownership import (
    AlreadyClaimed,
    ClaimLocked,
    ClaimNotFound,
    OwnedDeviceNotFound,
    Ownership,
    SameOwner,
    WrongClaimCode,
    add_months,
    code_hash,
    load_ownership_policy,
    my_device,
    registry_item,
    reissue_claim_code,
)
from aftercare.domain.ports import NewTicketPlan
from aftercare.domain.ports.ownership import ClaimConflict, NotTheOwner, UnknownCustomer
from aftercare.domain.tickets import Ticket
from aftercare.models.ownership import ClaimRequest, TransferRequest
from aftercare.models.tickets import Occurrence, TicketStatus
from moto import mock_aws
from pydantic import ValidationError

from infra import cli_advice
from infra.cli import invoke
from infra.cli_owners import my_device_row
from infra.seeding import DEMO_CLAIM_CODES, claim_code, claim_items, claimable_devices
from tests.fakes.diagnostics import make_ticket
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler
from tests.fakes.tables import create_template_tables

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
POLICY = load_ownership_policy()
TABLES = (
    "ClaimsTable",
    "DevicesTable",
    "CustomersTable",
    "TicketsTable",
    "DeviceHealthTable",
    "InventoryTable",
)
HEALTH = "aftercare-device-health-test"
RULES = load_maintenance_rules()
OWNERS = load_handler("owners", "owners_handler")
SEEDED = claimable_devices()
FIRST, SECOND = SEEDED[0], SEEDED[1]  # codes DEMO-CLAIM-0001, DEMO-CLAIM-0002


def customer(customer_id: str) -> Caller:
    return Caller(
        subject=customer_id,
        username=f"user-{customer_id}",
        groups=frozenset({"customers"}),
        customer_id=customer_id,
    )


STAFF = Caller(subject="e", username="eng-ada", groups=frozenset({"engineers"}))


# --------------------------------------------------------------------------- rules


def test_claim_codes_are_stored_as_hashes_and_compared_case_insensitively():
    assert code_hash("S1", "demo-claim-0001") == code_hash("S1", " DEMO-CLAIM-0001 ")
    assert code_hash("S1", "DEMO-CLAIM-0001") != code_hash("S2", "DEMO-CLAIM-0001")
    assert "DEMO" not in json.dumps(claim_items(SEEDED))


def test_warranty_months_are_policy_data_per_model_and_end_on_a_real_day():
    assert POLICY.warranty_months.months_for("EV-CH") == 36
    assert POLICY.warranty_months.months_for("RT-X") == 12
    assert POLICY.warranty_months.months_for("NEW-MODEL") == POLICY.warranty_months.default
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 12, 6), 24) == date(2028, 12, 6)


def test_requests_name_exactly_one_device_and_one_destination():
    assert ClaimRequest(serial="ACHP1", code="X1Y2").serial == "ACHP1"
    for bad in ({"code": "ABCD"}, {"serial": "A1B2", "thing": "rt-x-1", "code": "ABCD"}):
        with pytest.raises(ValidationError):
            ClaimRequest.model_validate(bad)
    with pytest.raises(ValidationError):
        ClaimRequest.model_validate({"serial": "ACHP1", "code": "ABCD", "owner": "me"})
    assert TransferRequest(release=True).to_customer is None
    assert TransferRequest(to_email="new.owner@example.com").to_email
    for bad in (
        {},
        {"to_customer": "c-2", "release": True},
        {"to_customer": "c-2", "to_email": "c2@example.com"},
        {"to_email": "not-an-address"},
    ):
        with pytest.raises(ValidationError):
            TransferRequest.model_validate(bad)


def test_the_claim_transaction_holds_the_claim_the_registry_and_the_customers_list():
    # When a claim's transaction is built
    device = registry_item(FIRST, "c-1", NOW.date(), date(2028, 12, 6))
    store = DynamoOwnershipStore(claims_table="C", devices_table="D", customers_table="K")
    parts = claim_parts(store.tables, FIRST, device, "c-1", now=NOW, limit=5)
    requests = [request for request, _ in parts]
    # Then one item per table, each conditional: unclaimed + code + below the limit, not yet
    # registered, an existing customer
    assert [next(iter(r.values()))["TableName"] for r in requests] == ["C", "D", "K"]
    claim = requests[0]["Update"]["ConditionExpression"]
    assert "attribute_not_exists(claimed_by)" in claim and "code_hash = :hash" in claim
    assert "wrong_codes < :limit" in claim
    assert requests[1]["Put"]["ConditionExpression"] == "attribute_not_exists(thing)"
    assert requests[2]["Update"]["UpdateExpression"] == "ADD devices :thing"
    assert "wrong_codes < :limit" in wrong_code_update("C", "S", 5)["ConditionExpression"]


def test_the_owners_view_has_only_their_tickets_and_the_warranty_state():
    # Given a device with an open ticket of its previous owner and one of the current owner
    device = registry_item(FIRST, "c-2", date(2024, 1, 1), date(2026, 1, 1))
    old = make_ticket(thing=FIRST.thing)
    new = make_ticket("FAN-STALL", thing=FIRST.thing).model_copy(
        update={"customer_id": "c-2", "ticket_id": "T-NEW"}
    )
    # When the current owner's view is built
    view = my_device(device, [old, new], "c-2", NOW)
    # Then only the current owner's ticket shows, the warranty is over, and no advice yet
    assert [t.ticket_id for t in view.open_tickets] == ["T-NEW"]
    assert view.warranty.in_warranty is False and view.warranty.until == date(2026, 1, 1)
    assert view.advice == [] and view.last_seen == new.last_seen


def fan_health(thing: str, owner: str, **changes: Any) -> DeviceHealth:
    """An RT-X whose fan is past its rated life (50,000 h) and was advised so at 09:00."""
    return DeviceHealth(
        thing=thing,
        model="RT-X",
        customer_id=owner,
        firmware="2.0.1",
        uptime_s=10,
        first_seen=NOW - timedelta(days=30),
        last_seen=NOW - timedelta(minutes=5),
        last_sent_at=NOW - timedelta(minutes=5),
        fan_hours=51000,
        advised={"fan-preventive": "2026-11-11/90d", "thermal-trend": "2026-12-03/7d"},
        advised_at={"fan-preventive": NOW - timedelta(hours=3)},
        **changes,
    )


def test_the_owners_view_has_the_advice_that_still_holds_with_its_part_and_price():
    # Given a device whose telemetry advised a fan replacement (and once opened a ticket)
    device = registry_item(FIRST, "c-2", date(2026, 1, 1), date(2027, 1, 1))
    health = fan_health(FIRST.thing, "c-2")
    # When its owner's view is built from the health item
    view = my_device(device, [], "c-2", NOW, health=health, rules=RULES)
    # Then the telemetry is the last time it was heard from, and the fan advice stands, priced
    assert view.last_seen == NOW - timedelta(minutes=5)
    [advice] = view.advice
    assert (advice.rule, advice.part, advice.price, advice.currency) == (
        "fan-preventive",
        "FAN-80MM",
        RULES.parts["FAN-80MM"].unit_price,
        "EUR",
    )
    assert advice.issued_at == NOW - timedelta(hours=3) and "51000 h" in advice.title_en
    # And once the fan is replaced, or for another owner, there is none
    replaced = health.model_copy(update={"fan_hours": 10.0})
    assert my_device(device, [], "c-2", NOW, health=replaced, rules=RULES).advice == []
    assert (
        my_device(device, [], "c-2", NOW, health=fan_health("x", "c-1"), rules=RULES).advice == []
    )


def test_a_silent_device_shows_the_offline_advice_from_when_it_went_silent():
    device = registry_item(FIRST, "c-2", date(2026, 1, 1), date(2027, 1, 1))
    health = fan_health(FIRST.thing, "c-2", offline_since=NOW - timedelta(minutes=1))
    view = my_device(device, [], "c-2", NOW, health=health, rules=RULES)
    assert [a.rule for a in view.advice] == ["fan-preventive", "offline"]
    assert view.advice[1].issued_at == NOW - timedelta(minutes=1)


def test_the_health_read_is_one_batch_get_of_health_keys():
    request = healths_request(HEALTH, ["a", "b"])
    assert request == {
        HEALTH: {
            "Keys": [
                {"thing": {"S": "a"}, "kind": {"S": "HEALTH"}},
                {"thing": {"S": "b"}, "kind": {"S": "HEALTH"}},
            ]
        }
    }


def test_seeded_claimable_devices_are_forty_with_two_documented_codes():
    assert len(SEEDED) == 40 and len({d.thing for d in SEEDED}) == 40
    assert claim_code(1) == DEMO_CLAIM_CODES[1] and FIRST.thing == "rt-x-9001"
    assert FIRST.code_hash == code_hash(FIRST.serial, "DEMO-CLAIM-0001")


# --------------------------------------------------------------------------- on moto


@pytest.fixture
def ddb(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        create_template_tables(client, TABLES)
        for item in claim_items(SEEDED[:4]):
            client.put_item(TableName="aftercare-claims-test", Item=to_item(item))
        for n in (1, 2, 3):
            client.put_item(
                TableName="aftercare-customers-test",
                Item=to_item(
                    {"customer_id": f"c-{n}", "name": f"C{n}", "email": f"c{n}@example.com"}
                ),
            )
        yield client


@pytest.fixture
def store(ddb: Any) -> DynamoOwnershipStore:
    return DynamoOwnershipStore(
        claims_table="aftercare-claims-test",
        devices_table="aftercare-devices-test",
        customers_table="aftercare-customers-test",
        ddb=ddb,
    )


@pytest.fixture
def owners(store: DynamoOwnershipStore, ddb: Any) -> Ownership:
    tickets = DynamoTicketReader(tickets_table="aftercare-tickets-test", ddb=ddb)
    health = DynamoHealthReader(health_table=HEALTH, ddb=ddb)
    return Ownership(
        store=store,
        tickets=tickets,
        health=health,
        rules=RULES,
        policy=POLICY,
        handover=ticket_store_on(ddb),
    )


def ticket_store_on(ddb: Any) -> DynamoTicketStore:
    return DynamoTicketStore(
        tickets_table="aftercare-tickets-test",
        devices_table="aftercare-devices-test",
        customers_table="aftercare-customers-test",
        inventory_table="aftercare-inventory-test",
        ddb=ddb,
    )


def claim(owners: Ownership, customer_id: str, code: str = "DEMO-CLAIM-0001", **device: str):
    where = device or {"serial": FIRST.serial}
    return owners.claim(
        customer(customer_id),
        serial=where.get("serial"),
        thing=where.get("thing"),
        code=code,
        now=NOW,
    )


def test_a_customer_claims_a_device_and_its_warranty_starts_that_day(owners, store):
    # When c-1 claims the first seeded device (an RT-X) with its code
    claimed = claim(owners, "c-1")
    # Then it is registered to c-1 with 12 months of warranty from today
    assert claimed.customer_id == "c-1" and claimed.activated_at == NOW.date()
    assert claimed.warranty_until == date(2027, 12, 6)
    assert store.device(FIRST.thing)["customer_id"] == "c-1"
    # And it is in c-1's devices, in warranty, with no tickets and no advice
    [mine] = owners.my_devices(customer("c-1"), NOW)
    assert (mine.thing, mine.serial, mine.model) == (FIRST.thing, FIRST.serial, "RT-X")
    assert mine.warranty.in_warranty and mine.open_tickets == [] and mine.advice == []


def test_my_devices_reads_every_devices_health_in_one_batch(owners, ddb, monkeypatch):
    # Given c-1 owns two devices and one of them has a health item with standing advice
    claim(owners, "c-1")
    claim(owners, "c-1", "DEMO-CLAIM-0002", thing=SECOND.thing)
    item = health_item(fan_health(FIRST.thing, "c-1"))
    ddb.put_item(TableName=HEALTH, Item=to_item(item))
    batch_gets: list[Any] = []
    original = ddb.batch_get_item
    monkeypatch.setattr(ddb, "batch_get_item", lambda **kw: batch_gets.append(kw) or original(**kw))
    # When c-1 lists their devices
    mine = {d.thing: d for d in owners.my_devices(customer("c-1"), NOW)}
    first, second = mine[FIRST.thing], mine[SECOND.thing]
    # Then the health of both came from one BatchGetItem on the health table
    health_reads = [b for b in batch_gets if HEALTH in b["RequestItems"]]
    assert len(health_reads) == 1 and len(health_reads[0]["RequestItems"][HEALTH]["Keys"]) == 2
    # And the device with telemetry shows its advice and when it was heard from
    assert [a.rule for a in first.advice] == ["fan-preventive"]
    assert first.last_seen == NOW - timedelta(minutes=5)
    assert second.advice == [] and second.last_seen is None


def test_a_device_can_be_claimed_by_its_thing_name(owners):
    assert claim(owners, "c-1", "DEMO-CLAIM-0002", thing=SECOND.thing).serial == SECOND.serial


def test_a_second_customer_with_the_same_code_is_told_already_claimed(owners):
    claim(owners, "c-1")
    with pytest.raises(AlreadyClaimed):
        claim(owners, "c-2")


def test_two_customers_racing_for_one_code_exactly_one_wins(owners, store):
    # Given both customers read the device as unclaimed before either wrote
    state = store.claim_state(serial=FIRST.serial)
    assert state is not None and not state.claimed
    item = registry_item(state, "c-1", NOW.date(), date(2027, 12, 6))
    # When both claim transactions run on that same reading
    store.claim(state, item, "c-1", NOW, limit=5)
    with pytest.raises(ClaimConflict):
        store.claim(state, {**item, "customer_id": "c-2"}, "c-2", NOW, limit=5)
    # Then the first owns it, and the loser's use case answers already_claimed
    assert store.device(FIRST.thing)["customer_id"] == "c-1"
    assert [d["thing"] for d in store.devices_of("c-2")] == []
    with pytest.raises(AlreadyClaimed):
        claim(owners, "c-2")


def test_wrong_codes_are_counted_and_lock_the_device_at_the_policys_limit(owners):
    limit = POLICY.claim.max_wrong_codes
    for attempt in range(1, limit):
        with pytest.raises(WrongClaimCode) as wrong:
            claim(owners, "c-2", "GUESS-0000")
        assert wrong.value.remaining == limit - attempt
    with pytest.raises(ClaimLocked):
        claim(owners, "c-2", "GUESS-0000")
    # Then even the right code no longer claims it
    with pytest.raises(ClaimLocked):
        claim(owners, "c-1")


def test_unknown_devices_and_unknown_customers_claim_nothing(owners, store):
    with pytest.raises(ClaimNotFound):
        claim(owners, "c-1", serial="NOPE0000")
    with pytest.raises(UnknownCustomer):
        claim(owners, "c-404")
    assert store.device(FIRST.thing) is None
    assert not store.claim_state(serial=FIRST.serial).claimed


def test_staff_cannot_claim(owners):
    with pytest.raises(Exception, match="only the customer"):
        owners.claim(STAFF, serial=FIRST.serial, thing=None, code="DEMO-CLAIM-0001", now=NOW)


def test_a_transfer_moves_the_device_and_keeps_its_warranty(owners, store):
    claimed = claim(owners, "c-1")
    # When c-1 hands it to c-2 a year later
    later = NOW + timedelta(days=365)
    outcome = owners.transfer(customer("c-1"), FIRST.thing, to_customer="c-2", now=later)
    # Then c-2 owns it, c-1 no longer lists it, the warranty is the first activation's
    assert (outcome.from_customer, outcome.to_customer) == ("c-1", "c-2")
    assert owners.my_devices(customer("c-1"), later) == []
    [theirs] = owners.my_devices(customer("c-2"), later)
    assert theirs.warranty.until == claimed.warranty_until
    assert store.claim_state(serial=FIRST.serial).claimed_by == "c-2"
    # And c-1 can no longer transfer it (not found, as any device they do not own)
    with pytest.raises(OwnedDeviceNotFound):
        owners.transfer(customer("c-1"), FIRST.thing, to_customer="c-3", now=later)


def test_a_device_is_transferred_to_the_customer_with_that_email(owners, store):
    claim(owners, "c-1")
    # When c-1 names the new owner by their contact e-mail (any case)
    outcome = owners.transfer(
        customer("c-1"), FIRST.thing, to_customer=None, to_email=" C3@Example.com", now=NOW
    )
    # Then that customer owns it
    assert outcome.to_customer == "c-3" and store.device(FIRST.thing)["customer_id"] == "c-3"
    # And an address nobody has is an unknown customer, changing nothing
    with pytest.raises(UnknownCustomer):
        owners.transfer(
            customer("c-3"), FIRST.thing, to_customer=None, to_email="x@example.com", now=NOW
        )
    assert store.device(FIRST.thing)["customer_id"] == "c-3"


def test_a_provisioned_device_never_claimed_can_be_transferred_and_released(owners, store, ddb):
    # Given a device registered by provisioning (no claims entry, not on the owner's list)
    provisioned = SECOND.model_copy(update={"serial": "P1", "thing": "rt-x-7777"})
    device = registry_item(provisioned, "c-1", date(2025, 1, 1), date(2028, 1, 1))
    ddb.put_item(TableName="aftercare-devices-test", Item=to_item(device))
    # When its owner hands it on and the next owner releases it
    owners.transfer(customer("c-1"), "rt-x-7777", to_customer="c-2", now=NOW)
    assert store.claim_state(thing="rt-x-7777") is None
    released = owners.transfer(customer("c-2"), "rt-x-7777", to_customer=None, now=NOW)
    # Then it is claimable by its serial with the new code, keeping its warranty
    again = owners.claim(
        customer("c-3"), serial="P1", thing=None, code=released.claim_code or "", now=NOW
    )
    assert again.warranty_until == date(2028, 1, 1) and again.activated_at == date(2025, 1, 1)


def test_a_transfer_to_nobody_or_to_oneself_changes_nothing(owners, store):
    claim(owners, "c-1")
    with pytest.raises(UnknownCustomer):
        owners.transfer(customer("c-1"), FIRST.thing, to_customer="c-404", now=NOW)
    with pytest.raises(SameOwner):
        owners.transfer(customer("c-1"), FIRST.thing, to_customer="c-1", now=NOW)
    assert store.device(FIRST.thing)["customer_id"] == "c-1"
    assert [d["thing"] for d in store.devices_of("c-1")] == [FIRST.thing]


def test_a_transfer_on_a_stale_reading_of_the_owner_fails(owners, store):
    # Given c-1's reading of the device, then a transfer to c-2 by another request
    claim(owners, "c-1")
    stale = store.device(FIRST.thing)
    owners.transfer(customer("c-1"), FIRST.thing, to_customer="c-2", now=NOW)
    # When the stale reading is used to transfer it to c-3
    with pytest.raises(NotTheOwner):
        store.transfer(stale, None, "c-3", NOW)
    # Then c-2 still owns it
    assert store.device(FIRST.thing)["customer_id"] == "c-2"


def test_a_released_device_is_claimable_with_a_new_code_and_keeps_its_warranty(owners, store):
    first = claim(owners, "c-1")
    released = owners.transfer(customer("c-1"), FIRST.thing, to_customer=None, now=NOW)
    assert released.claim_code and released.to_customer is None
    assert store.device(FIRST.thing) is None
    # The old code no longer works; the new one does, for anyone
    with pytest.raises(WrongClaimCode):
        claim(owners, "c-3")
    later = NOW + timedelta(days=30)
    again = owners.claim(
        customer("c-3"), serial=FIRST.serial, thing=None, code=released.claim_code, now=later
    )
    assert again.warranty_until == first.warranty_until
    assert again.activated_at == first.activated_at


# --------------------------------------------------------------------------- the API


CLAIMS = {
    "sub": "3",
    "token_use": "id",
    "cognito:username": "cust-1",
    "cognito:groups": ["customers"],
    "custom:customer_id": "c-1",
}


@pytest.fixture
def api(owners: Ownership, monkeypatch: pytest.MonkeyPatch) -> Ownership:
    monkeypatch.setattr(OWNERS, "deps", lambda: owners)
    return owners


def call(method: str, path: str, body: Any = None, claims: Any = None) -> tuple[int, Any]:
    event = http_api_event(method, path, CLAIMS if claims is None else claims, body)
    response = OWNERS.app.resolve(event, None)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def test_the_api_answers_each_outcome_with_its_status_and_reason(api):
    body = {"serial": FIRST.serial, "code": "WRONG-CODE"}
    assert call("POST", "/devices/claim", body)[1]["reason"] == "wrong_claim_code"
    status, answer = call("POST", "/devices/claim", {**body, "code": "DEMO-CLAIM-0001"})
    assert status == 201 and answer["thing"] == FIRST.thing
    assert call("POST", "/devices/claim", {**body, "code": "DEMO-CLAIM-0001"})[1]["reason"] == (
        "already_claimed"
    )
    assert call("POST", "/devices/claim", {"serial": "NOPE0000", "code": "ABCD"})[0] == 404
    assert call("POST", "/devices/claim", {"code": "ABCD"})[1]["reason"] == "validation_error"
    status, devices = call("GET", "/me/devices")
    assert status == 200 and [d["thing"] for d in devices] == [FIRST.thing]
    transfer = f"/devices/{FIRST.thing}/transfer"
    assert call("POST", transfer, {"to_customer": "c-404"})[1]["reason"] == "unknown_customer"
    assert call("POST", transfer, {"to_customer": "c-2"})[0] == 200
    assert call("POST", transfer, {"to_customer": "c-3"})[1]["reason"] == "not_found"
    assert call("GET", "/me/devices") == (200, [])


def test_the_api_locks_claims_after_too_many_wrong_codes(api):
    body = {"serial": FIRST.serial, "code": "WRONG-CODE"}
    answers = [call("POST", "/devices/claim", body) for _ in range(POLICY.claim.max_wrong_codes)]
    assert [s for s, _ in answers][-1] == 429 and answers[-1][1]["reason"] == "claim_locked"
    assert {s for s, _ in answers[:-1]} == {403}
    assert answers[0][1]["reason"] == "wrong_claim_code"


def test_the_clis_mine_rows_have_the_contracts_device_keys(owners):
    # Given c-1's device as GET /me/devices answers it
    claim(owners, "c-1")
    [device] = owners.my_devices(customer("c-1"), NOW)
    # When the CLI makes it a `devices list --mine --json` row
    row = my_device_row(device.model_dump(mode="json"))
    # Then it has every key `devices list --json` promises, plus the owner's view
    contract = {"thing", "serial", "model", "customer_id", "region", "warranty_until"}
    assert contract <= set(row) and row["customer_id"] == "c-1"
    assert row["warranty_until"] == "2027-12-06" and row["in_warranty"] is True
    assert row["open_tickets"] == [] and row["advice"] == []


def test_support_reissues_a_locked_devices_code_and_the_customer_claims_with_it(owners, store):
    # Given a device locked by wrong codes
    for _ in range(POLICY.claim.max_wrong_codes):
        with pytest.raises((WrongClaimCode, ClaimLocked)):
            claim(owners, "c-2", "GUESS-0000")
    # When support re-issues its code
    code = reissue_claim_code(store, FIRST.serial, POLICY)
    # Then the old code is gone and the new one claims it
    with pytest.raises(WrongClaimCode):
        claim(owners, "c-1")
    assert claim(owners, "c-1", code).customer_id == "c-1"
    # And a claimed or unknown device gets no new code
    with pytest.raises(AlreadyClaimed):
        reissue_claim_code(store, FIRST.serial, POLICY)
    with pytest.raises(ClaimNotFound):
        reissue_claim_code(store, "NOPE0000", POLICY)


class OwnersApiClient:
    """The CLI's API client, answered by the Owners function's resolver as c-1."""

    def get(self, path: str) -> Any:
        status, body = call("GET", path)
        assert status == 200
        return body


def test_advice_list_json_has_one_row_per_standing_advice_of_the_customers_devices(
    api, ddb, monkeypatch, capsys
):
    # Given c-1 owns two devices, one of whose telemetry advised a fan replacement
    claim(api, "c-1")
    claim(api, "c-1", "DEMO-CLAIM-0002", thing=SECOND.thing)
    ddb.put_item(TableName=HEALTH, Item=to_item(health_item(fan_health(FIRST.thing, "c-1"))))
    monkeypatch.setattr(cli_advice, "required_client", lambda opts: OwnersApiClient())
    # When c-1 runs `aftercare advice list --json` (through GET /me/devices)
    invoke(["advice", "list", "--json"])
    rows = json.loads(capsys.readouterr().out)
    # Then there is one row, with the device, the rule, its message, part, price and time
    assert [(r["thing"], r["rule"], r["part"]) for r in rows] == [
        (FIRST.thing, "fan-preventive", "FAN-80MM")
    ]
    expected = {"thing", "model", "rule", "title_en", "title_zh", "part", "price", "currency"}
    assert expected | {"issued_at"} == set(rows[0])
    assert rows[0]["price"] == RULES.parts["FAN-80MM"].unit_price
    assert rows[0]["issued_at"].startswith((NOW - timedelta(hours=3)).date().isoformat())


def open_for(
    store: DynamoTicketStore, customer_id: str, code: str, ticket_id: str, **update: Any
) -> Ticket:
    """A ticket on FIRST's device for `customer_id`, opened with its open-fault lock."""
    ticket = make_ticket(code, thing=FIRST.thing).model_copy(
        update={"ticket_id": ticket_id, "customer_id": customer_id, **update}
    )
    occurrence = Occurrence(
        fault_id=f"f-{ticket_id.lower()}", occurred_at=NOW, received_at=NOW,
        severity=ticket.severity, firmware="1",
    )  # fmt: skip
    store.open_ticket(
        NewTicketPlan(ticket=ticket, occurrence=occurrence, timeline=[], dedup_expires_at=0)
    )
    return ticket


def test_a_transfer_closes_the_old_owners_open_ticket_so_the_code_opens_anew(owners, ddb):
    # Given c-1's device with an open FAN-STALL ticket and a PSU-OVERVOLT one with a visit booked
    claim(owners, "c-1")
    store = ticket_store_on(ddb)
    waiting = open_for(store, "c-1", "FAN-STALL", "T-OLDFAN00001")
    visited = open_for(store, "c-1", "PSU-OVERVOLT", "T-OLDPSU00001", status=TicketStatus.SCHEDULED)
    # When c-1 hands the device to c-2
    later = NOW + timedelta(days=30)
    outcome = owners.transfer(customer("c-1"), FIRST.thing, to_customer="c-2", now=later)
    # Then the open ticket is cancelled `ownership_transferred` and stays c-1's, the one a
    # visit holds is left to it, and the response says which is which
    assert outcome.closed_tickets == [waiting.ticket_id]
    assert outcome.kept_tickets == [visited.ticket_id]
    closed = store.get_ticket(waiting.ticket_id)
    assert closed.ticket.status is TicketStatus.CANCELLED
    assert closed.ticket.customer_id == "c-1"
    assert closed.timeline[-1].detail["reason"].startswith("ownership_transferred")
    assert store.get_ticket(visited.ticket_id).ticket.status is TicketStatus.SCHEDULED
    # And the FAN-STALL code is free on the device: a new report opens c-2's own ticket
    context = store.load_intake_context(FIRST.thing, "FAN-STALL", "f-new")
    assert context.lock is None
    fresh = open_for(store, "c-2", "FAN-STALL", "T-NEWFAN00001")
    assert store.get_ticket(fresh.ticket_id).ticket.customer_id == "c-2"
    lock = store.load_intake_context(FIRST.thing, "FAN-STALL", "f-newer").lock
    assert lock is not None and lock.ticket_id == fresh.ticket_id


def test_a_release_closes_the_old_owners_open_tickets_too(owners, ddb):
    claim(owners, "c-1")
    waiting = open_for(ticket_store_on(ddb), "c-1", "FAN-STALL", "T-OLDFAN00002")
    released = owners.transfer(customer("c-1"), FIRST.thing, to_customer=None, now=NOW)
    assert released.claim_code and released.closed_tickets == [waiting.ticket_id]
