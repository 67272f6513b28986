"""The API side of the local stack, piece by piece: Cognito + HttpApi provisioning from the
template (serial moto server), seeded users and their tokens, the IoT data-plane stand-in
forwarding to a real Mosquitto, and the diagnostics adapter's transactions on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import jwt
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.diagnostics import DynamoDiagnosticsStore, IotDataPublisher
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.ticket_items import ticket_item
from aftercare.domain.diagnostics import start_diagnostic
from aftercare.domain.diagnostics_plans import plan_completion, plan_timeout
from aftercare.domain.ports import ConcurrentUpdate
from aftercare.domain.rules import load_catalog
from aftercare.models.diagnostics import DiagnosticState, Outcome, Purpose
from aftercare.models.payloads import DiagnosticsRequest, DiagnosticsResult, DiagnosticStatus

from infra.local.apigw_auth import JwtAuthorizer
from infra.local.apigw_routes import AuthorizerSpec
from infra.local.provision_api import LOCAL_PASSWORD, seed_users
from tests.fakes.diagnostics import NOW, FakePublisher, make_ticket
from tests.integration.iot_data import device_on, iot_data_stand_in
from tests.integration.mosquitto_fixture import MosquittoBroker

REGION = "us-east-1"


def client(service: str, moto_url: str):
    return boto3.client(service, endpoint_url=moto_url, region_name=REGION)


# --------------------------------------------------------------------------- provisioning


def test_the_service_api_routes_every_functions_http_events(provisioned):
    api = provisioned.apis["ServiceApi"]
    routes = {r["route_key"]: r for r in api["routes"]}
    assert routes["POST /tickets/{ticket_id}/diagnostics"]["authorizer"] == "CognitoJwt"
    assert routes["GET /openapi.json"]["authorizer"] is None  # Auth: Authorizer: NONE
    assert {r["function"] for r in routes.values()} >= {"ServiceApiFunction"}
    jwt_config = api["authorizers"]["CognitoJwt"]
    pool = provisioned.resources["ServiceUserPool"]
    assert jwt_config["issuer"] == f"https://cognito-idp.{REGION}.amazonaws.com/{pool}"
    assert jwt_config["audience"] == [provisioned.resources["ServiceUserPoolClient"]]
    assert jwt_config["jwks_url"].endswith(f"/{pool}/.well-known/jwks.json")


def test_seeded_users_get_tokens_the_authorizer_accepts(provisioned, moto_url):
    # Given the pool, its groups and the seeded users
    pool = provisioned.resources["ServiceUserPool"]
    groups = client("cognito-idp", moto_url).list_groups(UserPoolId=pool)["Groups"]
    assert {g["GroupName"] for g in groups} == {"engineers", "managers", "customers"}
    assert seed_users(pool, moto_url, REGION)["customer"] == "cust-0001"
    # When a customer logs in with the local password
    answer = client("cognito-idp", moto_url).initiate_auth(
        ClientId=provisioned.resources["ServiceUserPoolClient"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "cust-0001", "PASSWORD": LOCAL_PASSWORD},
    )
    token = answer["AuthenticationResult"]["IdToken"]
    # Then the local authorizer accepts the token: issuer names AWS, keys from moto's JWKS
    config = provisioned.apis["ServiceApi"]["authorizers"]["CognitoJwt"]
    claims = JwtAuthorizer(AuthorizerSpec(**config)).claims({"authorization": f"Bearer {token}"})
    assert claims["iss"].startswith("https://cognito-idp.")
    assert claims["custom:customer_id"] == "c-0001" and claims["cognito:groups"] == ["customers"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


# --------------------------------------------------------------------------- iot-data


def test_iot_data_publish_reaches_the_broker(mosquitto: MosquittoBroker):
    # Given the data-plane stand-in in front of a broker, and a device subscribed to its topic
    topic = "cmd/aftercare/rt-x-0001/diagnostics/req"
    with iot_data_stand_in(mosquitto.url) as url, device_on(mosquitto.port, topic) as device:
        # When a function publishes a request with boto3's iot-data client
        request = DiagnosticsRequest(
            request_id="T-ABC_0123456789",
            routine="self_test",
            expires_at=datetime.now(UTC) + timedelta(minutes=1),
        )
        IotDataPublisher(endpoint=url).publish("rt-x-0001", request)
        # Then the device gets it at QoS 1, byte for byte
        assert device.received.wait(10)
        assert device.got[0].qos == 1
        assert DiagnosticsRequest.model_validate_json(device.got[0].payload) == request


# --------------------------------------------------------------------------- the adapter


def test_a_remote_fix_settles_resolves_and_releases_in_one_transaction(provisioned, moto_url):
    # Given an open ticket stored in the template's TicketsTable
    ddb = client("dynamodb", moto_url)
    tickets_table = provisioned.resources["TicketsTable"]
    ticket = make_ticket("SENSOR-DRIFT", thing="ac-hp-0008", model="AC-HP")
    ddb.put_item(TableName=tickets_table, Item=to_item(ticket_item(ticket)))
    store = DynamoDiagnosticsStore(
        tickets_table=tickets_table,
        inventory_table=provisioned.resources["InventoryTable"],
        ddb=ddb,
    )
    # And a verification request that is pending (and therefore due for the sweeper later)
    record = start_diagnostic(
        store,
        FakePublisher(),
        ticket,
        routine="self_test",
        params=None,
        timeout=timedelta(seconds=30),
        actor="diagnostics",
        purpose=Purpose.VERIFY,
        now=NOW,
    )
    assert store.due(NOW + timedelta(minutes=1), 10) == [(ticket.ticket_id, record.request_id)]
    # When the verification passes
    context = store.load(ticket.ticket_id, record.request_id)
    received = NOW + timedelta(seconds=1)
    result = DiagnosticsResult(
        request_id=record.request_id,
        status=DiagnosticStatus.PASSED,
        findings={"active_faults": [], "ratio": 0.5},
        completed_at=received,
    )
    assert context.ticket is not None and context.record is not None
    plan = plan_completion(
        context.ticket,
        context.record,
        result,
        received,
        load_catalog(),
        rev=context.rev,
        now=received + timedelta(seconds=1),
    )
    store.complete(plan)
    # Then the record is settled (and off the sweeper's index) and the ticket resolved remotely
    after = store.load(ticket.ticket_id, record.request_id)
    assert after.record.status is DiagnosticState.COMPLETED
    assert after.record.outcome is Outcome.REMOTE_FIX
    assert after.ticket.status.value == "resolved" and after.ticket.resolution.value == "remote"
    assert store.due(NOW + timedelta(minutes=1), 10) == []
    kinds = [
        e.kind
        for e in DynamoTicketStore(
            tickets_table=tickets_table, devices_table="x", customers_table="x", ddb=ddb
        )
        .get_ticket(ticket.ticket_id)
        .timeline
    ]
    assert kinds == ["diagnostics_requested", "diagnostics_result", "status_changed"]
    # And settling it again (a duplicate, or the sweeper) is refused by the condition
    with pytest.raises(ConcurrentUpdate):
        store.complete(plan_timeout(after.ticket, record, NOW, rev=0))
