"""Notifier, NotificationScheduler and Survey handlers on the serial moto server.

Tickets come from the real FaultIntake handler; the notifier reads the TicketsTable's real
stream records; SES and SNS are moto's, which refuse what AWS refuses (an unverified sender, a
phone number that is not E.164) and record what they accept.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import client, to_item
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.notification_reports import NotificationReports
from aftercare.adapters.survey_store import DynamoSurveyStore
from aftercare.domain.lifecycle import change_status
from aftercare.domain.surveys import survey_id_for
from aftercare.models.tickets import Resolution, TicketStatus
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from infra.local.motoserver import SerialMotoServer
from infra.local.provision import provision
from infra.local.provision_context import AwsClients
from infra.local.seed import seed_demo
from infra.local.template import load_template
from infra.seeding import demo_customers, demo_devices
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import FakeContext, load_handler
from tests.fakes.tables import ticket_store

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FUNCTIONS = ("FaultIntakeFunction", "NotifierFunction", "SurveyFunction")
DEVICES = {d.thing: d for d in demo_devices()}
CUSTOMERS = {c.customer_id: c for c in demo_customers()}


class Stream:
    """Reads the TicketsTable stream like the event source mapping (one shard is enough here)."""

    def __init__(self, streams: Any, arn: str) -> None:
        self.streams = streams
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        self.iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        self.arn = arn

    def new_meta_records(self) -> list[dict[str, Any]]:
        response = self.streams.get_records(ShardIterator=self.iterator)
        self.iterator = response["NextShardIterator"]
        return [
            {**r, "eventSourceARN": self.arn}
            for r in response["Records"]
            if r["dynamodb"]["Keys"]["sk"]["S"] == "META"
        ]


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    saved = dict(os.environ)
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer() as server:
        # moto's state lives in this process: start clean and leave nothing for other modules
        reset_moto(server.url)
        clients = AwsClients.for_endpoint(server.url, REGION)
        result = provision(
            load_template(ROOT / "template.yaml"),
            clients,
            endpoint_url=server.url,
            param_overrides={"SurveyDelaySeconds": "1", "DigestWindowSeconds": "2"},
        )
        seed_demo(result.resources, server.url, REGION)
        env = {"AWS_ENDPOINT_URL": server.url, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
        env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        env |= {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "Aftercare"}
        for fn in FUNCTIONS:
            env |= result.workers[fn]["environment"]
        os.environ.update(env)
        client.cache_clear()
        handlers = {
            "intake": load_handler("fault_intake", "handler_fault_intake_it"),
            "notifier": load_handler("notifier", "handler_notifier_it"),
            "scheduler": load_handler(
                "notification_scheduler", "handler_notification_scheduler_it"
            ),
            "survey": load_handler("survey", "handler_survey_it"),
        }
        streams = boto3.session.Session(region_name=REGION).client(
            "dynamodbstreams", endpoint_url=server.url
        )
        yield {
            "resources": result.resources,
            "ddb": clients.dynamodb,
            "sqs": clients.sqs,
            "sns": clients.sns,
            "stream": Stream(streams, result.physical["TicketsTable"]["StreamArn"]),
            **handlers,
        }
        client.cache_clear()
        reset_moto(server.url)
    os.environ.clear()
    os.environ.update(saved)


def reset_moto(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def customer_without_quiet_hours(world: dict[str, Any], customer_id: str, **changes: Any) -> None:
    """Tests run at any time of day: these customers have no quiet hours unless a test says so."""
    item = CUSTOMERS[customer_id].model_dump(mode="json") | changes
    world["ddb"].put_item(TableName=world["resources"]["CustomersTable"], Item=to_item(item))


def fault(world: dict[str, Any], thing: str, code: str, fault_id: str | None = None) -> None:
    report = {
        "fault_id": fault_id or f"nt-{uuid.uuid4().hex[:12]}",
        "code": code,
        "occurred_at": datetime.now(UTC).isoformat(),
        "firmware": "3.1.0",
    }
    body = {
        "payload_b64": base64.b64encode(json.dumps(report).encode()).decode(),
        "thing": thing,
        "received_at": int(time.time() * 1000),
        "topic": f"dt/aftercare/{thing}/fault",
    }
    record = {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:aftercare-faults-local",
        "awsRegion": REGION,
    }
    response = world["intake"].handler({"Records": [record]}, FakeContext())
    assert response == {"batchItemFailures": []}


def notify(world: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    return world["notifier"].handler({"Records": records}, FakeContext())


def emails_to(address: str) -> list[Any]:
    sent = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    return [m for m in sent if address in m.destinations.get("ToAddresses", [])]


def sms_to(number: str) -> list[Any]:
    return [
        m for m in sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages.values() if m[0] == number
    ]


def surveys(world: dict[str, Any]) -> DynamoSurveyStore:
    r = world["resources"]
    return DynamoSurveyStore(
        table=r["NotificationsTable"], tickets_table=r["TicketsTable"], ddb=world["ddb"]
    )


def reports(world: dict[str, Any]) -> NotificationReports:
    return NotificationReports(table=world["resources"]["NotificationsTable"], ddb=world["ddb"])


def tickets(world: dict[str, Any]) -> DynamoTicketStore:
    return ticket_store(world["resources"], world["ddb"])


def test_a_fault_is_told_once_in_the_customers_language_however_often_redelivered(world):
    # Given a zh-CN customer preferring email, outside quiet hours
    thing, customer = "ac-hp-0004", DEVICES["ac-hp-0004"].customer_id
    profile = CUSTOMERS[customer]
    customer_without_quiet_hours(world, customer, language="zh-CN", channels=["email"])
    # When the device's fault opens a ticket and the stream delivers the change three times
    fault(world, thing, "FAN-STALL")
    records = world["stream"].new_meta_records()
    assert [r["eventName"] for r in records] == ["INSERT"]
    for _ in range(3):
        assert notify(world, records) == {"batchItemFailures": []}
    # Then exactly one email in Chinese went out, with the ticket and the cost
    (email,) = emails_to(profile.contact["email"])
    (ticket,) = tickets(world).list_tickets(thing=thing)
    assert ticket.ticket_id in email.subject and "散热风扇停转" in email.subject
    assert "保修" in email.body or "预计" in email.body
    # And the attempt is on the ticket's timeline
    timeline = tickets(world).get_ticket(ticket.ticket_id).timeline
    (entry,) = [e for e in timeline if e.kind == "notification"]
    assert entry.detail["status"] == "sent" and entry.detail["channel"] == "email"


def test_twenty_more_occurrences_send_nothing(world):
    thing, customer = "ev-ch-0006", DEVICES["ev-ch-0006"].customer_id
    customer_without_quiet_hours(world, customer, channels=["email"])
    fault(world, thing, "TEMP-HIGH")
    notify(world, world["stream"].new_meta_records())
    before = len(emails_to(CUSTOMERS[customer].contact["email"]))
    # When the device reports the same fault 20 more times
    for _ in range(20):
        fault(world, thing, "TEMP-HIGH")
    records = world["stream"].new_meta_records()
    assert len(records) == 20 and {r["eventName"] for r in records} == {"MODIFY"}
    notify(world, records)
    # Then nothing more was sent
    assert before == 1 and len(emails_to(CUSTOMERS[customer].contact["email"])) == 1


def test_an_invalid_phone_number_falls_back_to_email(world):
    # Given c-0013: SMS first, a phone number SNS refuses (not E.164)
    thing, customer = "rt-x-0013", "c-0013"
    assert DEVICES[thing].customer_id == customer
    customer_without_quiet_hours(
        world, customer, contact=CUSTOMERS[customer].contact | {"phone": "0800 AFTERCARE"}
    )
    assert CUSTOMERS[customer].channels == ["sms", "email"]
    # When a fault opens a ticket
    fault(world, thing, "TEMP-HIGH")
    notify(world, world["stream"].new_meta_records())
    # Then no SMS went out, the email did, and both attempts are recorded
    assert sms_to("0800 AFTERCARE") == []
    assert len(emails_to(CUSTOMERS[customer].contact["email"])) == 1
    attempts = reports(world).list_attempts(customer_id=customer)
    assert [(a["channel"], a["status"]) for a in attempts] == [("sms", "failed"), ("email", "sent")]
    assert "E164" in attempts[0]["reason"]


def test_resolution_survey_answer_and_follow_up(world):
    # Given a ticket, notified, then resolved remotely
    thing, customer = "ic-300-0007", DEVICES["ic-300-0007"].customer_id
    customer_without_quiet_hours(world, customer, channels=["sms", "email"])
    fault(world, thing, "TEMP-HIGH")
    notify(world, world["stream"].new_meta_records())
    (ticket,) = tickets(world).list_tickets(thing=thing)
    change_status(
        tickets(world),
        ticket.ticket_id,
        TicketStatus.RESOLVED,
        actor="test",
        reason="fixed remotely",
        now=datetime.now(UTC),
        resolution=Resolution.REMOTE,
    )
    records = world["stream"].new_meta_records()
    notify(world, records)
    notify(world, records)  # redelivered: no second message, no second survey
    store = surveys(world)
    survey_id = survey_id_for(ticket.ticket_id)
    assert store.get_survey(survey_id) is not None
    # When the survey delay (1 s) has passed and the scheduler runs
    time.sleep(2.5)  # also past the 2 s digest window holding the resolution message
    tick: dict[str, Any] = {
        "version": "0",
        "id": "1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).isoformat(),
        "region": REGION,
        "resources": [],
        "detail": {},
    }
    world["scheduler"].handler(tick, FakeContext())
    # Then the customer got the resolution and the survey by SMS, once each
    texts = [m[1] for m in sms_to(CUSTOMERS[customer].contact["phone"])]
    assert sum("fixed" in t for t in texts) == 1, texts
    assert sum(survey_id in t for t in texts) == 1, texts
    # When the owner answers 2, then tries again, and another customer tries
    answer = api(world, "POST", survey_id, customer, {"rating": 2, "comment": "slow"})
    again = api(world, "POST", survey_id, customer, {"rating": 5})
    stranger = api(world, "POST", survey_id, "c-0001", {"rating": 5})
    invalid = api(world, "POST", survey_id, customer, {"rating": 9})
    # Then the first counts, a follow-up exists, the rest are refused
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["rating"] == 2
    assert (again["statusCode"], stranger["statusCode"], invalid["statusCode"]) == (409, 404, 422)
    (follow_up,) = [f for f in reports(world).list_followups() if f["survey_id"] == survey_id]
    assert follow_up["ticket_id"] == ticket.ticket_id and follow_up["comment"] == "slow"
    assert store.csat().answered >= 1
    read = api(world, "GET", survey_id, customer)
    assert read["statusCode"] == 200 and json.loads(read["body"])["status"] == "answered"


def api(
    world: dict[str, Any],
    method: str,
    survey_id: str,
    customer_id: str,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    path = f"/surveys/{survey_id}" + ("/answer" if method == "POST" else "")
    claims = {
        "sub": f"sub-{customer_id}",
        "token_use": "id",
        "cognito:username": customer_id,
        "cognito:groups": "[customers]",
        "custom:customer_id": customer_id,
    }
    event = http_api_event(method, path, claims, body, path_params={"survey_id": survey_id})
    return world["survey"].handler(event, FakeContext())
