"""The SQS event source mapping of a local Lambda worker: poll, batch, invoke, delete or retry.

An idle poller long-polls (``WaitTimeSeconds`` 1: the local moto server gives its one-at-a-time
lock up while a receive waits, see `infra.local.motoserver`), so an empty queue costs one request
a second instead of several and a message is taken the moment it arrives; once a batch has
begun, short polls fill it for at most ``max_batching_window_s`` (up to ``batch_size``). Then the
exact Lambda SQS event, and delete / retry per the outcome (ReportBatchItemFailures included).

Deviations from AWS, on purpose:

* Failed records (the whole batch when the handler raised or answered with an invalid
  ``batchItemFailures``, else the reported items) are made visible again after
  ``retry_backoff_s`` (default 1 s) instead of the queue's visibility timeout, so local retries
  and redrive to the DLQ (moto applies ``maxReceiveCount`` on receive) happen in seconds.
* With ``sqs_lease_s`` (the local stack sets it) messages are received for that many seconds
  and the lease is renewed while the batch is gathered and invoked, so the batch of a worker
  that crashed is visible again within the lease instead of the queue's visibility timeout; the
  restarted worker (or another consumer) then takes it.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from infra.local.lambda_runtime import Invocation, Invoker
from infra.local.worker_spec import SqsSourceSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueOutputTypeDef,
        MessageTypeDef,
        ReceiveMessageRequestTypeDef,
    )

logger = logging.getLogger("infra.local.worker")  # not under "aftercare": the functions' logger

SQS_MAX_BATCH = 10  # ReceiveMessage / DeleteMessageBatch limit
POLL_DELAY_MIN_S = 0.02
POLL_DELAY_MAX_S = 0.25
IDLE_WAIT_S = 1  # an empty batch's receive waits this long for a message (a long poll)
LEASE_SLACK_S = 2
RECEIVE_FAILURE_PAUSE_S = 1.0


_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
    "AWSTraceHeader",
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _record_attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = _b64(value["BinaryValue"])
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [_b64(item) for item in value.get("BinaryListValues", [])]
    attribute["dataType"] = value["DataType"]
    return attribute


def sqs_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the Lambda SQS event, from one ReceiveMessage message."""
    attributes = cast(Mapping[str, str], message.get("Attributes", {}))
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {name: attributes[name] for name in _RECORD_ATTRIBUTES if name in attributes},
        "messageAttributes": {
            name: _record_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


@dataclass(frozen=True)
class Settlement:
    """Which records of a batch failed; ``problem`` says why the whole batch did, if it did."""

    failed: frozenset[str]
    problem: str | None = None


def settle_batch(
    invocation: Invocation, message_ids: Sequence[str], report_batch_item_failures: bool
) -> Settlement:
    """Apply Lambda's rules for an SQS batch's outcome (ReportBatchItemFailures semantics)."""
    everything = frozenset(message_ids)
    if not invocation.ok:
        return Settlement(everything, "the handler raised")
    if not report_batch_item_failures:
        return Settlement(frozenset())
    return _reported_failures(invocation.result, everything)


def _reported_failures(response: object, everything: frozenset[str]) -> Settlement:
    if response is None:
        return Settlement(frozenset())
    if not isinstance(response, dict):
        return Settlement(everything, f"the response is a {type(response).__name__}, not an object")
    items = response.get("batchItemFailures")
    if items is None or items == []:
        return Settlement(frozenset())
    if not isinstance(items, list):
        return Settlement(everything, "batchItemFailures is not a list")
    failed = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return Settlement(everything, f"invalid batchItemFailures entry {item!r}")
        failed.add(identifier)
    return Settlement(frozenset(failed))


class _PollDelay:
    """Short sleeps while messages flow, growing while the queue stays empty."""

    def __init__(self) -> None:
        self._delay = POLL_DELAY_MIN_S

    def reset(self) -> None:
        self._delay = POLL_DELAY_MIN_S

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, POLL_DELAY_MAX_S)
        return delay


def _chunks(items: Sequence[MessageTypeDef]) -> list[Sequence[MessageTypeDef]]:
    return [items[start : start + SQS_MAX_BATCH] for start in range(0, len(items), SQS_MAX_BATCH)]


class SqsPoller:
    """One SQS event source mapping: poll, batch, invoke, delete or retry."""

    def __init__(
        self,
        source: SqsSourceSpec,
        *,
        sqs: SQSClient,
        invoker: Invoker,
        region: str,
        retry_backoff_s: int,
        stop: threading.Event,
        lease_s: int = 0,
    ) -> None:
        self._source = source
        self._sqs = sqs
        self._invoker = invoker
        self._region = region
        self._retry_backoff_s = retry_backoff_s
        self._stop = stop
        # Never shorter than the batching window plus a renewal's worth of slack.
        self._lease_s = (
            max(lease_s, math.ceil(source.max_batching_window_s) + LEASE_SLACK_S) if lease_s else 0
        )
        self._delay = _PollDelay()
        self._receive_failing = False
        self.thread = threading.Thread(target=self._run, name=f"sqs-{source.event_id}", daemon=True)

    def _run(self) -> None:
        logger.info("polling %s for %s", self._source.queue_url, self._source.event_id)
        while not self._stop.is_set():
            with _LeaseRenewal(self._renew, self._lease_s) as lease:
                batch = self._collect(lease.messages)
                if batch:
                    self._process(batch, lease)

    def _renew(self, messages: Sequence[MessageTypeDef]) -> None:
        self._change_visibility(messages, self._lease_s)

    # -- batching --------------------------------------------------------------------------
    def _collect(self, batch: list[MessageTypeDef]) -> list[MessageTypeDef]:
        """Fill `batch` (the list whose lease is renewed) up to the batch size or window."""
        deadline: float | None = None
        while not self._stop.is_set():
            wait_s = 0 if batch else IDLE_WAIT_S
            received = self._receive(self._source.batch_size - len(batch), wait_s)
            batch.extend(received)
            if batch and deadline is None:
                deadline = time.monotonic() + self._source.max_batching_window_s
            if len(batch) >= self._source.batch_size or self._expired(deadline):
                return list(batch)
            if received:
                self._delay.reset()
            elif batch:  # the window is open: short polls with short pauses fill the batch
                self._pause(deadline)
        self._change_visibility(list(batch), 0)  # stopping before the invoke: hand them back
        batch.clear()
        return []

    @staticmethod
    def _expired(deadline: float | None) -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def _pause(self, deadline: float | None) -> None:
        delay = self._delay.next()
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        self._stop.wait(delay)

    def _receive(self, wanted: int, wait_s: int) -> list[MessageTypeDef]:
        request: ReceiveMessageRequestTypeDef = {
            "QueueUrl": self._source.queue_url,
            "MaxNumberOfMessages": min(wanted, SQS_MAX_BATCH),
            "WaitTimeSeconds": wait_s,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self._lease_s:
            request["VisibilityTimeout"] = self._lease_s
        try:
            response = self._sqs.receive_message(**request)
        except (BotoCoreError, ClientError) as exc:
            if not self._receive_failing:
                logger.warning("cannot receive from %s: %s", self._source.queue_url, exc)
            self._receive_failing = True
            self._stop.wait(RECEIVE_FAILURE_PAUSE_S)
            return []
        if self._receive_failing:
            logger.info("receiving from %s again", self._source.queue_url)
            self._receive_failing = False
        return response.get("Messages", [])

    # -- settlement ------------------------------------------------------------------------
    def _process(self, batch: list[MessageTypeDef], lease: _LeaseRenewal) -> None:
        records = [sqs_record(m, self._source.queue_arn, self._region) for m in batch]
        message_ids = [message["MessageId"] for message in batch]
        invocation = self._invoker.invoke(
            {"Records": records}, source=f"SQS {self._source.event_id}"
        )
        lease.end()  # settled below: no renewal may land after the delete or the retry delay
        settlement = settle_batch(invocation, message_ids, self._source.report_batch_item_failures)
        if settlement.problem:
            logger.warning(
                "%s: the whole batch failed: %s", self._source.event_id, settlement.problem
            )
        succeeded = [m for m in batch if m["MessageId"] not in settlement.failed]
        failed = [m for m in batch if m["MessageId"] in settlement.failed]
        self._delete(succeeded)
        self._change_visibility(failed, self._retry_backoff_s)
        logger.info(
            "%s: batch of %d, %d deleted, %d retried in %d s",
            self._source.event_id,
            len(batch),
            len(succeeded),
            len(failed),
            self._retry_backoff_s,
        )

    def _delete(self, messages: Sequence[MessageTypeDef]) -> None:
        for chunk in _chunks(messages):
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(chunk)
            ]
            try:
                response = self._sqs.delete_message_batch(
                    QueueUrl=self._source.queue_url, Entries=entries
                )
            except (BotoCoreError, ClientError) as exc:
                logger.error(
                    "cannot delete %d messages (they will be redelivered): %s", len(chunk), exc
                )
                continue
            for failure in response.get("Failed", []):
                logger.error("cannot delete a message (it will be redelivered): %s", failure)

    def _change_visibility(self, messages: Sequence[MessageTypeDef], seconds: int) -> None:
        for chunk in _chunks(messages):
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {
                    "Id": str(index),
                    "ReceiptHandle": message["ReceiptHandle"],
                    "VisibilityTimeout": seconds,
                }
                for index, message in enumerate(chunk)
            ]
            try:
                response = self._sqs.change_message_visibility_batch(
                    QueueUrl=self._source.queue_url, Entries=entries
                )
            except (BotoCoreError, ClientError) as exc:
                logger.warning("cannot change visibility (queue timeout applies): %s", exc)
                continue
            for failure in response.get("Failed", []):
                logger.warning("cannot change a message's visibility: %s", failure)


class _LeaseRenewal:
    """Renews the visibility of `messages` every third of the lease until `end()`.

    The poller appends what it receives to `messages` and ends the lease before it settles the
    batch. A lease of 0 renews nothing (the queue's visibility timeout applies).
    """

    def __init__(self, renew: Callable[[Sequence[MessageTypeDef]], None], lease_s: int) -> None:
        self._renew = renew
        self._lease_s = lease_s
        self.messages: list[MessageTypeDef] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-lease", daemon=True)

    def __enter__(self) -> _LeaseRenewal:
        if self._lease_s:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.end()
        if self._thread.is_alive():
            self._thread.join()

    def end(self) -> None:
        with self._lock:  # waits for a renewal in flight
            self._done.set()

    def _run(self) -> None:
        while not self._done.wait(self._lease_s / 3):
            with self._lock:
                held = list(self.messages)
                if held and not self._done.is_set():
                    self._renew(held)
