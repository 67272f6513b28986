"""Notifications end to end: device agents over MQTT -> intake -> ticket stream -> notifier ->
SES / SNS in moto, the scheduled sweep, the survey function; one local stack for this module.

The stack runs with a 1 s sweep, a 4 s digest window and a 2 s survey delay so the time-based
behaviour shows within seconds. Each test sets its customers' preferences itself (the seed gives
everyone 22:00-07:00 quiet hours, and these tests run at any time of day).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aftercare.adapters.aws import from_item, to_item
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.notification_reports import NotificationReports
from aftercare.domain.lifecycle import change_status
from aftercare.domain.surveys import survey_id_for
from aftercare.domain.tickets import Ticket
from aftercare.models.payloads import Severity
from aftercare.models.tickets import Resolution, TicketStatus

from devices.agent import DeviceAgent
from infra.cli_session import authenticate
from infra.local.provision_api import LOCAL_PASSWORD
from infra.local.stack import LocalStack
from infra.notification_summary import notification_summary
from infra.seeding import demo_customers, demo_devices, notification_preferences
from infra.target import Target
from tests.e2e.conftest import device_agent_config, wait_for
from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {
    "DigestWindowSeconds": "4",
    "SurveyDelaySeconds": "2",
}
# Local only: the template's sweep rates cannot go below EventBridge's minute.
SCHEDULES = {"NotificationSchedulerFunction": 1.0}
CUSTOMERS = {c.customer_id: c for c in demo_customers()}
OWNER = {d.thing: d.customer_id for d in demo_devices()}


def devices_of(customer_id: str) -> list[str]:
    return sorted(thing for thing, owner in OWNER.items() if owner == customer_id)


def chinese_customer() -> str:
    """A seeded customer who reads Chinese (and whom no other test here uses)."""
    used = {"c-0003", "c-0005", "c-0007", "c-0013"}
    return next(
        c.customer_id
        for c in CUSTOMERS.values()
        if c.language == "zh-CN" and c.customer_id not in used
    )


class World:
    def __init__(self, stack: LocalStack, state: dict[str, Any]) -> None:
        self.stack = stack
        self.state = state
        self.state_dir = stack.state_dir
        self.target = Target(
            resources=dict(state["resources"]),
            endpoint_url=state["aws_endpoint_url"],
            region=state["region"],
            state=state,
        )
        self.ddb = self.target.client("dynamodb")
        self.tickets = DynamoTicketStore(
            tickets_table=self.target.resource("TicketsTable"),
            devices_table=self.target.resource("DevicesTable"),
            customers_table=self.target.resource("CustomersTable"),
            inventory_table=self.target.resource("InventoryTable"),
            ddb=self.ddb,
        )
        self.notifications = NotificationReports(
            table=self.target.resource("NotificationsTable"), ddb=self.ddb
        )

    def prefer(self, customer_id: str, **changes: Any) -> dict[str, Any]:
        """Set a seeded customer's preferences (no quiet hours unless given)."""
        seeded = CUSTOMERS[customer_id]
        item = seeded.model_dump(mode="json") | notification_preferences(seeded)
        item |= {"quiet_hours": None} | changes
        self.ddb.put_item(TableName=self.target.resource("CustomersTable"), Item=to_item(item))
        return item

    def agent(self, thing: str, tmp_path: Path) -> DeviceAgent:
        config = device_agent_config(self.state, thing, tmp_path / thing)
        agent = DeviceAgent(config)
        assert agent.start(connect_timeout=10)
        return agent

    def attempts(self, customer_id: str) -> list[dict[str, Any]]:
        return self.notifications.list_attempts(customer_id=customer_id)

    def sent(self, customer_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            a
            for a in self.attempts(customer_id)
            if a["status"] == "sent" and (kind is None or a["kind"] == kind)
        ]

    def ticket_of(self, thing: str) -> Ticket:
        return wait_for(lambda: self.tickets.list_tickets(thing=thing), what=f"{thing}'s ticket")[0]

    def cli_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "infra.cli", *args, "--state-dir", str(self.state_dir)]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)

    def cli(self, *args: str) -> Any:
        argv = [
            sys.executable,
            "-m",
            "infra.cli",
            *args,
            "--json",
            "--state-dir",
            str(self.state_dir),
        ]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        url = self.state["functions"][function]["invoke_url"]
        request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not MOSQUITTO_BINARY.exists():
        pytest.fail(f"{MOSQUITTO_BINARY} is missing: run `make setup` (installs mosquitto)")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    stack = LocalStack(
        ROOT,
        tmp_path_factory.mktemp("notifications") / "state",
        param_overrides=PARAMS,
        schedule_seconds=SCHEDULES,
    )
    try:
        state = stack.start()
        yield World(stack, state)
    finally:
        stack.stop()


def push_inbox(world: World) -> str:
    """An SQS queue subscribed to the push topic: what the app-push service would receive."""
    sqs, sns = world.target.client("sqs"), world.target.client("sns")
    url = sqs.create_queue(QueueName=f"push-inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=world.target.resource("CustomerPushTopic"),
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return url


def drain(world: World, queue_url: str) -> list[dict[str, Any]]:
    sqs = world.target.client("sqs")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages"):
        messages += batch
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)
            ],
        )
    return messages


def test_one_fault_one_message_on_the_right_channel_in_the_right_language(
    world: World, tmp_path: Path
) -> None:
    # Given a customer who reads Chinese and prefers app push, and the app-push service
    customer = chinese_customer()
    thing = devices_of(customer)[0]
    world.prefer(customer, channels=["push", "email"])
    inbox = push_inbox(world)
    agent = world.agent(thing, tmp_path)
    # When the device reports a fault
    agent.raise_fault("TEMP-HIGH")
    # Then exactly one "ticket opened" message went out, by push, in Chinese
    (sent,) = wait_for(lambda: world.sent(customer), timeout=30, what="the first notification")
    ticket = world.ticket_of(thing)
    assert (sent["kind"], sent["channel"], sent["language"]) == ("ticket_opened", "push", "zh-CN")
    assert sent["ticket_id"] == ticket.ticket_id
    (push,) = wait_for(lambda: drain(world, inbox), what="the push message")
    body = json.loads(push["Body"])
    assert ticket.ticket_id in body["title"] and "内部温度过高" in body["title"]
    token = CUSTOMERS[customer].contact["push"]
    assert push["MessageAttributes"]["push_token"]["StringValue"] == token

    # When the device reports the same fault 20 more times
    for n in range(20):
        agent.raise_fault("TEMP-HIGH", readings={"n": n})
    agent.stop(drain_timeout=20)
    wait_for(
        lambda: world.tickets.get_ticket(ticket.ticket_id).ticket.occurrences == 21,
        what="21 occurrences",
    )
    # and a later change (another customer's new ticket) has been notified
    # (one stream shard, read in order: everything before it has been processed too)
    sentinel = devices_of("c-0005")[0]
    world.prefer(OWNER[sentinel])
    other = world.agent(sentinel, tmp_path)
    other.raise_fault("TEMP-HIGH")
    other.stop(drain_timeout=10)
    wait_for(lambda: world.sent(OWNER[sentinel]), timeout=30, what="the sentinel's notification")
    # Then the occurrences sent nothing
    assert len(world.sent(customer)) == 1 and drain(world, inbox) == []


def test_a_failing_first_channel_falls_back(world: World, tmp_path: Path) -> None:
    # Given c-0013, who prefers SMS but whose number SNS refuses (not E.164: see the seed)
    customer = "c-0013"
    thing = devices_of(customer)[0]
    profile = world.prefer(customer)
    assert profile["channels"] == ["sms", "email"]
    assert not profile["contact"]["phone"].startswith("+")
    agent = world.agent(thing, tmp_path)
    # When a fault opens a ticket
    agent.raise_fault("TEMP-HIGH")
    agent.stop(drain_timeout=10)
    # Then the SMS attempt failed with SNS's reason and the email carried the message
    wait_for(lambda: world.sent(customer), timeout=30, what="the email")
    rows = world.cli("notifications", "list", "--customer", customer)
    assert [(r["channel"], r["status"]) for r in rows] == [("sms", "failed"), ("email", "sent")]
    assert "E164" in rows[0]["reason"]


def test_quiet_hours_delay_a_minor_fault_but_not_a_critical_one(
    world: World, tmp_path: Path
) -> None:
    # Given c-0007 (New York) whose quiet hours end 10 s from now
    customer = "c-0007"
    minor_thing, critical_thing = devices_of(customer)[:2]
    zone = ZoneInfo(CUSTOMERS[customer].time_zone)
    now = datetime.now(UTC)
    quiet_end = (now + timedelta(seconds=10)).replace(microsecond=0)
    world.prefer(
        customer,
        channels=["email"],
        quiet_hours={
            "start": (now - timedelta(minutes=1)).astimezone(zone).strftime("%H:%M:%S"),
            "end": quiet_end.astimezone(zone).strftime("%H:%M:%S"),
        },
    )
    minor, critical = world.agent(minor_thing, tmp_path), world.agent(critical_thing, tmp_path)
    # When a minor and a critical fault arrive during quiet hours
    minor.raise_fault("TEMP-HIGH", severity=Severity.MINOR)
    critical.raise_fault("PSU-OVERVOLT")
    minor.stop(drain_timeout=10)
    critical.stop(drain_timeout=10)
    # Then the critical one is sent at once, the minor one is deferred with its reason
    minor_ticket, critical_ticket = world.ticket_of(minor_thing), world.ticket_of(critical_thing)

    def of(ticket: Ticket) -> list[dict[str, Any]]:
        return [a for a in world.attempts(customer) if a["ticket_id"] == ticket.ticket_id]

    (urgent,) = wait_for(lambda: of(critical_ticket), timeout=30, what="the critical message")
    assert urgent["status"] == "sent"
    assert datetime.fromisoformat(urgent["at"]) < quiet_end
    (deferred,) = wait_for(lambda: of(minor_ticket), timeout=30, what="the deferral")
    assert deferred["status"] == "deferred" and "quiet hours until" in deferred["reason"]
    # And the minor one goes out once the quiet hours are over
    late = wait_for(
        lambda: [a for a in of(minor_ticket) if a["status"] == "sent"],
        timeout=30,
        what="the deferred message",
    )
    assert len(late) == 1 and datetime.fromisoformat(late[0]["at"]) >= quiet_end


def api_answer(world: World, user: str, survey_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST /surveys/{id}/answer through the local API gateway, as the seeded user `user`."""
    token = authenticate(world.target, user, LOCAL_PASSWORD)["id_token"]
    request = urllib.request.Request(
        f"{world.state['api_url']}/surveys/{survey_id}/answer",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_survey_after_resolution_and_a_low_rating_opens_a_follow_up(
    world: World, tmp_path: Path
) -> None:
    # Given c-0003 (the seeded API user cust-0003) with an open, notified ticket
    customer = "c-0003"
    thing = devices_of(customer)[0]
    world.prefer(customer, channels=["email"])
    agent = world.agent(thing, tmp_path)
    agent.raise_fault("TEMP-HIGH")
    agent.stop(drain_timeout=10)
    wait_for(lambda: world.sent(customer), timeout=30, what="the opening message")
    ticket = world.ticket_of(thing)
    # When the ticket is resolved remotely
    change_status(
        world.tickets,
        ticket.ticket_id,
        TicketStatus.RESOLVED,
        actor="e2e",
        reason="fixed remotely",
        now=datetime.now(UTC),
        resolution=Resolution.REMOTE,
    )
    # Then the resolution message and, after the survey delay, the survey go out
    survey_id = survey_id_for(ticket.ticket_id)
    wait_for(lambda: world.sent(customer, "remote_resolved"), timeout=30, what="the resolution")
    (survey,) = wait_for(lambda: world.sent(customer, "survey"), timeout=30, what="the survey")
    assert survey_id in survey["body"]
    # When the owner rates the service 1 through the API, then tries again, and so does another
    status, answer = api_answer(world, "cust-0003", survey_id, {"rating": 1, "comment": "slow"})
    again, _ = api_answer(world, "cust-0003", survey_id, {"rating": 5})
    stranger, _ = api_answer(world, "cust-0001", survey_id, {"rating": 5})
    # Then the one answer is stored, and a follow-up task is open for managers
    assert (status, answer["rating"]) == (200, 1)
    assert (again, stranger) == (409, 404)
    followups = world.cli("followups", "list")
    mine = [f for f in followups if f["survey_id"] == survey_id]
    assert [(f["ticket_id"], f["rating"], f["comment"]) for f in mine] == [
        (ticket.ticket_id, 1, "slow")
    ]
    assert world.cli("surveys", "csat")["answered"] == 1
    # And the CLI, logged in as the customer, is refused the same way
    assert world.cli_run("login", "--user", "cust-0003").returncode == 0
    refused = world.cli_run("surveys", "answer", survey_id, "--rating", "4")
    assert refused.returncode == 1 and "already answered" in refused.stderr


def test_redelivered_stream_records_send_nothing_twice(world: World) -> None:
    # Given everything notified so far
    before = [a for a in world.notifications.list_attempts() if a["status"] == "sent"]
    assert before
    # When the notifier gets every ticket change of the stream again (as after a lost checkpoint)
    meta = ticket_stream_records(world)
    assert len(meta) > 20
    for start in range(0, len(meta), 25):
        response = world.invoke("NotifierFunction", {"Records": meta[start : start + 25]})
        assert response == {"batchItemFailures": []}
    # Then nothing was sent again
    after = [a for a in world.notifications.list_attempts() if a["status"] == "sent"]
    assert len(after) == len(before)


def ticket_stream_records(world: World) -> list[dict[str, Any]]:
    """Every META change in the TicketsTable stream, as Lambda would deliver it."""
    streams = world.target.client("dynamodbstreams")
    table = world.ddb.describe_table(TableName=world.target.resource("TicketsTable"))["Table"]
    arn = table["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator and (page := streams.get_records(ShardIterator=iterator))["Records"]:
            records += page["Records"]
            iterator = page.get("NextShardIterator")
    return [lambda_record(r, arn) for r in records if r["dynamodb"]["Keys"]["sk"]["S"] == "META"]


def lambda_record(record: dict[str, Any], arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda delivers it (epoch seconds, the source ARN)."""
    images = dict(record["dynamodb"])
    created = images.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        images["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": images, "eventSourceARN": arn}


def test_the_summary_counts_messages_and_latency(world: World) -> None:
    summary = notification_summary(world.target)
    assert summary["by_channel"]["email"] >= 3 and summary["by_channel"]["push"] >= 1
    assert summary["after_fallback"] >= 1
    latency = summary["fault_to_first_notification"]["sent_at_once"]
    assert latency["count"] >= 3 and latency["p50_ms"] is not None
    assert summary["surveys"]["answered"] >= 1 and summary["followups_open"] >= 1
    items = [
        from_item(i)
        for i in world.ddb.scan(TableName=world.target.resource("NotificationsTable"))["Items"]
    ]
    assert any(i["sk"] == "CSAT" for i in items)
