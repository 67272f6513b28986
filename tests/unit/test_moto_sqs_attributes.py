"""The local stack's one-pass `Queue.attributes` (`infra.local.moto_speedups`) answers what
moto's own property answers, for queues with messages in every state."""

from __future__ import annotations

import json

import boto3
from moto import mock_aws
from moto.sqs.models import Queue, sqs_backends

from infra.local import moto_speedups


def _sqs():
    return boto3.client(
        "sqs",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _queue(name: str) -> Queue:
    return sqs_backends["123456789012"]["us-east-1"].get_queue(name)


def _moto_attributes(queue: Queue) -> dict:
    return moto_speedups._ORIGINAL_QUEUE_ATTRIBUTES.fget(queue)


def test_attributes_match_motos_for_visible_delayed_and_in_flight_messages():
    with mock_aws():
        sqs = _sqs()
        dead = sqs.create_queue(QueueName="dead")["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": dead_arn["Attributes"]["QueueArn"], "maxReceiveCount": 3}
        url = sqs.create_queue(
            QueueName="work",
            Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "60"},
        )["QueueUrl"]
        # Given 5 messages: 2 delayed, 1 received (in flight), 2 waiting
        for n in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=str(n), DelaySeconds=60 if n < 2 else 0)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
        queue = _queue("work")
        # When the attributes are built both ways
        ours, moto = queue.attributes, _moto_attributes(queue)
        # Then they are equal, counts included
        assert ours == moto
        assert list(ours) == list(moto)
        assert (
            ours["ApproximateNumberOfMessages"],
            ours["ApproximateNumberOfMessagesDelayed"],
            ours["ApproximateNumberOfMessagesNotVisible"],
        ) == (2, 2, 1)


def test_attributes_match_motos_for_a_fifo_queue_with_deduplication_and_kms():
    with mock_aws():
        sqs = _sqs()
        url = sqs.create_queue(
            QueueName="work.fifo",
            Attributes={
                "FifoQueue": "true",
                "ContentBasedDeduplication": "true",
                "KmsMasterKeyId": "alias/aws/sqs",
            },
        )["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g")
        sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g")  # deduplicated
        queue = _queue("work.fifo")
        assert queue.attributes == _moto_attributes(queue)
        assert queue.attributes["ContentBasedDeduplication"] == "true"
        assert queue.attributes["ApproximateNumberOfMessages"] == 1
