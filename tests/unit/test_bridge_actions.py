"""The rule bridge tells a failure that retrying can fix from one it cannot."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from infra.local.iot_sql_parser import parse_sql
from infra.local.rule_actions import SQS_MAX_MESSAGE_BYTES, ActionFailed, SqsAction
from infra.local.rule_engine import DirectParking, Inbound, ParkingFailed, Rule, apply_rule


class FakeSqs:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.sent: list[str] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        if self.error:
            raise self.error
        self.sent.append(MessageBody)
        return {"MessageId": "m"}


def client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SendMessage",
    )


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (client_error(400, "AWS.SimpleQueueService.NonExistentQueue"), True),
        (client_error(400, "InvalidParameterValue"), True),
        (client_error(400, "Throttling"), False),
        (client_error(500, "InternalError"), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), False),
    ],
)
def test_a_refusal_is_permanent_an_outage_is_not(error: Exception, permanent: bool) -> None:
    with pytest.raises(ActionFailed) as caught:
        SqsAction(FakeSqs(error), "q", use_base64=False).run({"a": 1})  # type: ignore[arg-type]
    assert caught.value.permanent is permanent


def test_a_document_over_sqs_limit_is_refused_without_sending() -> None:
    sqs = FakeSqs()
    with pytest.raises(ActionFailed) as caught:
        SqsAction(sqs, "q", use_base64=False).run({"a": "x" * SQS_MAX_MESSAGE_BYTES})  # type: ignore[arg-type]
    assert caught.value.permanent and not sqs.sent


def test_when_the_error_action_fails_the_failure_says_whether_to_retry() -> None:
    rule = Rule(
        name="r",
        parsed=parse_sql("SELECT encode(*, 'base64') AS p FROM 'dt/aftercare/+/fault'"),
        actions=(SqsAction(FakeSqs(client_error(500, "InternalError")), "q", False),),  # type: ignore[arg-type]
        error_action=SqsAction(FakeSqs(), "dlq", False),  # type: ignore[arg-type]
    )
    big = b"x" * SQS_MAX_MESSAGE_BYTES
    with pytest.raises(ParkingFailed) as caught:
        apply_rule(rule, "dt/aftercare/t-1/fault", big, 0)
    assert caught.value.permanent  # the error document (base64 of 1 MiB) can never fit
    assert [f.action for f in caught.value.failures] == ["SqsAction", "ErrorAction:SqsAction"]


class FakeDdb:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def put_item(self, TableName: str, Item: dict[str, Any]) -> None:
        self.items.append(Item)


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (client_error(500, "InternalError"), "rule_error:SqsAction"),  # a replay may deliver it
        (client_error(400, "InvalidParameterValue"), "undeliverable:SqsAction"),
    ],
)
def test_a_directly_parked_message_says_whether_a_replay_could_deliver_it(first, reason):
    rule = Rule(
        name="r",
        parsed=parse_sql("SELECT encode(*, 'base64') AS p FROM 'dt/aftercare/+/fault'"),
        actions=(SqsAction(FakeSqs(first), "q", False),),  # type: ignore[arg-type]
        error_action=SqsAction(FakeSqs(client_error(400, "NonExistentQueue")), "dlq", False),  # type: ignore[arg-type]
    )
    with pytest.raises(ParkingFailed) as caught:
        apply_rule(rule, "dt/aftercare/t-1/fault", b"{}", 0)
    ddb = FakeDdb()
    inbound = Inbound("dt/aftercare/t-1/fault", b"{}", qos=1, mid=1, generation=0, received_ms=0)
    assert DirectParking("parked", ddb).park(rule, inbound, caught.value) == reason
    (item,) = ddb.items
    assert item["source"] == {"S": "iot-rules"} and item["thing"] == {"S": "t-1"}
