"""One local Lambda function: imports its handler and feeds it events, like one Lambda instance.

Run: ``python -m infra.local.worker --spec-file PATH`` (see `WorkerSpec`).

Event sources, all serialised through one lock (one instance, one invocation at a time):

* SQS, emulating the event source mapping: short polls (never long polling: the local moto
  server answers one request at a time), batches of up to ``batch_size`` gathered for at most
  ``max_batching_window_s``, the exact Lambda SQS event, then delete / retry per the outcome.
* DynamoDB streams, emulating the stream event source mapping (`infra.local.streams`): shards
  read in order, filter patterns, batches, retries, bisection, partial batch responses and the
  on-failure SQS destination.
* Schedules: an EventBridge "Scheduled Event" every ``rate_seconds``.
* HTTP: ``POST /invoke`` or ``POST /2015-03-31/functions/<name>/invocations`` (Lambda's Invoke
  API, including ``X-Amz-Invocation-Type: Event`` and ``DryRun``); ``GET /health``.

stdout carries only the ``READY {"invoke_url": ...}`` line; everything else, including what the
handler prints (Powertools logs, EMF metrics), goes to stderr.

Deviations from AWS, on purpose:

* Failed SQS records (the whole batch when the handler raised or answered with an invalid
  ``batchItemFailures``, else the reported items) are made visible again after
  ``retry_backoff_s`` (default 1 s) instead of the queue's visibility timeout, so local retries
  and redrive to the DLQ (moto applies ``maxReceiveCount`` on receive) happen in seconds.
* A handler that overruns ``timeout`` is not killed (a thread cannot be); a warning is logged.
* With ``sqs_lease_s`` (the local stack sets it) SQS messages are received for that many
  seconds and the lease is renewed while the batch is gathered and invoked, so the batch of a
  worker that crashed is visible again within the lease instead of the queue's visibility
  timeout; the restarted worker (or another consumer) then takes it.
* With ``checkpoint_dir`` stream positions survive a restart (see `infra.local.streams`).
"""

from __future__ import annotations

import argparse
import base64
import decimal
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from infra.local.stream_checkpoints import CheckpointFile
from infra.local.streams import StreamPoller, StreamSourceSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueOutputTypeDef,
        MessageTypeDef,
        ReceiveMessageRequestTypeDef,
    )

logger = logging.getLogger(
    "infra.local.worker"
)  # not under "aftercare": that is the functions' logger

Handler = Callable[[Any, Any], Any]

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account
SQS_MAX_BATCH = 10  # ReceiveMessage / DeleteMessageBatch limit
POLL_DELAY_MIN_S = 0.02
POLL_DELAY_MAX_S = 0.25
LEASE_SLACK_S = 2
RECEIVE_FAILURE_PAUSE_S = 1.0
HEALTH_CHECK_INTERVAL_S = 1.0
SHUTDOWN_GRACE_S = 5.0


# ---------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------
class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqsSourceSpec(_SpecModel):
    event_id: str
    queue_url: str
    queue_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[\w-]*:sqs:")]
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 10
    max_batching_window_s: Annotated[float, Field(ge=0, le=300)] = 0
    report_batch_item_failures: bool = False


class ScheduleSourceSpec(_SpecModel):
    event_id: str
    rate_seconds: Annotated[float, Field(gt=0)]


class WorkerSpec(_SpecModel):
    """The spec file the orchestrator writes for one function's worker process."""

    logical_id: str
    function_name: Annotated[str, StringConstraints(min_length=1)]
    code_uri: str
    layer_paths: list[str] = Field(default_factory=list)
    handler: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")]
    environment: dict[str, str | bool | int | float] = Field(default_factory=dict)
    timeout: Annotated[int, Field(ge=1, le=900)]
    memory_size: Annotated[int, Field(ge=128, le=10_240)]
    region: str
    aws_endpoint_url: str
    sqs_sources: list[SqsSourceSpec] = Field(default_factory=list)
    schedule_sources: list[ScheduleSourceSpec] = Field(default_factory=list)
    stream_sources: list[StreamSourceSpec] = Field(default_factory=list)
    invoke_host: str = "127.0.0.1"
    invoke_port: Annotated[int, Field(ge=0, le=65_535)] = 0
    account_id: Annotated[str, StringConstraints(pattern=r"^\d{12}$")] = DEFAULT_ACCOUNT_ID
    retry_backoff_s: Annotated[int, Field(ge=0, le=43_200)] = 1
    sqs_lease_s: Annotated[int, Field(ge=0, le=43_200)] = 0  # 0: the queue's visibility timeout
    checkpoint_dir: str | None = None  # where stream pollers keep their positions


# ---------------------------------------------------------------------------------------------
# Function identity, environment, handler import
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LambdaContext:
    """Quacks like the Lambda runtime's context object (all that Powertools reads, and more)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float  # time.monotonic() at which Lambda would stop the invocation
    identity: None = None
    client_context: None = None
    tenant_id: None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class FunctionIdentity:
    name: str
    arn: str
    memory_mb: int
    timeout_s: int
    log_group: str
    log_stream: str

    @classmethod
    def from_spec(cls, spec: WorkerSpec) -> FunctionIdentity:
        started = datetime.now(UTC).strftime("%Y/%m/%d")
        return cls(
            name=spec.function_name,
            arn=f"arn:aws:lambda:{spec.region}:{spec.account_id}:function:{spec.function_name}",
            memory_mb=spec.memory_size,
            timeout_s=spec.timeout,
            log_group=f"/aws/lambda/{spec.function_name}",
            log_stream=f"{started}/[$LATEST]{uuid.uuid4().hex}",
        )

    def context(self, request_id: str) -> LambdaContext:
        return LambdaContext(
            function_name=self.name,
            function_version="$LATEST",
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_mb,
            aws_request_id=request_id,
            log_group_name=self.log_group,
            log_stream_name=self.log_stream,
            deadline=time.monotonic() + self.timeout_s,
        )


def _environment_text(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def lambda_environment(spec: WorkerSpec, identity: FunctionIdentity) -> dict[str, str]:
    """The function's variables plus what the Lambda runtime sets (which wins, as in AWS)."""
    environment = {name: _environment_text(value) for name, value in spec.environment.items()}
    environment.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": identity.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": identity.log_stream,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ENDPOINT_URL": spec.aws_endpoint_url,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "LAMBDA_TASK_ROOT": spec.code_uri,
            "_HANDLER": spec.handler,
        }
    )
    return environment


def _apply_environment(environment: Mapping[str, str]) -> None:
    os.environ.update(environment)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


class HandlerImportError(Exception):
    """The handler could not be imported (Lambda's Runtime.ImportModuleError / init error)."""


def import_handler(spec: WorkerSpec) -> Handler:
    """Put the code and layers first on sys.path and import ``module.attribute``."""
    if not Path(spec.code_uri).is_dir():
        raise HandlerImportError(f"code_uri {spec.code_uri} is not a directory")
    module_name, _, attribute = spec.handler.rpartition(".")
    sys.path[0:0] = [spec.code_uri, *spec.layer_paths]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # module init runs arbitrary code; report whatever it raised
        raise HandlerImportError(
            f"cannot import module {module_name!r} for handler {spec.handler!r} from "
            f"{spec.code_uri} (layers: {spec.layer_paths}):\n{traceback.format_exc()}"
        ) from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerImportError(
            f"handler {spec.handler!r}: module {module_name!r} has no callable {attribute!r}"
        )
    return cast(Handler, handler)


# ---------------------------------------------------------------------------------------------
# Invocation
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Invocation:
    request_id: str
    ok: bool
    result: Any  # the handler's return value when ok
    error: dict[str, Any] | None  # Lambda's error document when not ok
    duration_s: float


def lambda_error(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The error document Lambda returns for an unhandled exception (handler frames only)."""
    handler_frames = exc.__traceback__.tb_next if exc.__traceback__ else None
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(handler_frames)),
    }


class Invoker:
    """Calls the handler one invocation at a time, like a single Lambda instance."""

    def __init__(self, handler: Handler, identity: FunctionIdentity) -> None:
        self._handler = handler
        self._identity = identity
        self._lock = threading.Lock()

    def invoke(self, event: Any, source: str) -> Invocation:
        with self._lock:
            invocation = self._invoke(event)
        self._report(invocation, source)
        return invocation

    def _invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        try:
            result = self._handler(event, self._identity.context(request_id))
        except Exception as exc:  # the runtime turns any handler exception into a function error
            error = lambda_error(exc, request_id)
            return Invocation(request_id, False, None, error, time.monotonic() - started)
        return Invocation(request_id, True, result, None, time.monotonic() - started)

    def _report(self, invocation: Invocation, source: str) -> None:
        status = "ok" if invocation.ok else "error"
        logger.info(
            "REPORT RequestId: %s Source: %s Duration: %.2f ms Status: %s",
            invocation.request_id,
            source,
            invocation.duration_s * 1000,
            status,
        )
        if invocation.error:
            logger.error(
                "invocation %s failed: %s: %s\n%s",
                invocation.request_id,
                invocation.error["errorType"],
                invocation.error["errorMessage"],
                "".join(invocation.error["stackTrace"]),
            )
        if invocation.duration_s > self._identity.timeout_s:
            logger.warning(
                "invocation %s ran %.1f s, over the function's %d s timeout: Lambda would have "
                "stopped it and counted it as failed",
                invocation.request_id,
                invocation.duration_s,
                self._identity.timeout_s,
            )


# ---------------------------------------------------------------------------------------------
# SQS event source mapping
# ---------------------------------------------------------------------------------------------
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
            received = self._receive(self._source.batch_size - len(batch))
            batch.extend(received)
            if batch and deadline is None:
                deadline = time.monotonic() + self._source.max_batching_window_s
            if len(batch) >= self._source.batch_size or self._expired(deadline):
                return list(batch)
            if received:
                self._delay.reset()
            else:
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

    def _receive(self, wanted: int) -> list[MessageTypeDef]:
        request: ReceiveMessageRequestTypeDef = {
            "QueueUrl": self._source.queue_url,
            "MaxNumberOfMessages": min(wanted, SQS_MAX_BATCH),
            "WaitTimeSeconds": 0,  # never long-poll: the local moto server is single-request
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


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------
def scheduled_event(identity: FunctionIdentity, event_id: str, region: str) -> dict[str, Any]:
    """An EventBridge "Scheduled Event" as Lambda receives it."""
    account = identity.arn.split(":")[4]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{identity.name}-{event_id}"],
        "detail": {},
    }


class Scheduler:
    """Invokes the handler every ``rate_seconds`` (first time one period after start)."""

    def __init__(
        self,
        source: ScheduleSourceSpec,
        identity: FunctionIdentity,
        invoker: Invoker,
        region: str,
        stop: threading.Event,
    ) -> None:
        self._source = source
        self._identity = identity
        self._invoker = invoker
        self._region = region
        self._stop = stop
        self.thread = threading.Thread(
            target=self._run, name=f"schedule-{source.event_id}", daemon=True
        )

    def _run(self) -> None:
        rate = self._source.rate_seconds
        next_at = time.monotonic() + rate
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            event = scheduled_event(self._identity, self._source.event_id, self._region)
            self._invoker.invoke(event, source=f"Schedule {self._source.event_id}")
            while next_at <= time.monotonic():  # skip ticks missed while the handler ran
                next_at += rate


# ---------------------------------------------------------------------------------------------
# HTTP invoke API
# ---------------------------------------------------------------------------------------------
class _EventQueue:
    """Asynchronous (``Event``) invocations, run one after another like Lambda's event queue."""

    def __init__(self, invoker: Invoker) -> None:
        self._invoker = invoker
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-invoke")
        self._lock = threading.Lock()
        self._pending = 0

    def submit(self, event: Any) -> None:
        with self._lock:
            self._pending += 1
        self._pool.submit(self._run, event)

    def _run(self, event: Any) -> None:
        try:
            self._invoker.invoke(event, source="HTTP Event")
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            dropped = self._pending  # cancelled before they ran
        if dropped:
            logger.warning("%d queued asynchronous invocations dropped at shutdown", dropped)


def _json_default(value: object) -> object:
    if isinstance(value, decimal.Decimal):  # as the Lambda Python runtime does
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _invocation_body(invocation: Invocation) -> tuple[bytes, bool]:
    """The Invoke response body and whether it is a function error."""
    if invocation.error is not None:
        return json.dumps(invocation.error).encode(), True
    try:
        return json.dumps(invocation.result, default=_json_default).encode(), False
    except (TypeError, ValueError) as exc:
        error = {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
            "requestId": invocation.request_id,
            "stackTrace": [],
        }
        return json.dumps(error).encode(), True


class _InvokeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        invoker: Invoker,
        identity: FunctionIdentity,
        events: _EventQueue,
    ) -> None:
        super().__init__(address, _InvokeRequestHandler)
        self.invoker = invoker
        self.identity = identity
        self.events = events

    def names_function(self, requested: str) -> bool:
        name = unquote(requested)
        return name in (self.identity.name, self.identity.arn) or name.endswith(
            f":function:{self.identity.name}"
        )


class _InvokeRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aftercare-local-lambda"

    @property
    def _server(self) -> _InvokeServer:
        return cast(_InvokeServer, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http %s", format % args)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/health":
            self._send_json(HTTPStatus.OK, {"function": self._server.identity.name, "ok": True})
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        if not self._is_invoke_path():
            self._send_not_found()
            return
        try:
            event = self._read_event()
        except ValueError as exc:
            self._send_error("InvalidRequestContentException", f"Could not parse body: {exc}")
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "RequestResponse":
            self._invoke_synchronously(event)
        elif invocation_type == "Event":
            self._server.events.submit(event)
            self._send(HTTPStatus.ACCEPTED, b"")
        elif invocation_type == "DryRun":
            self._send(HTTPStatus.NO_CONTENT, b"")
        else:
            self._send_error(
                "InvalidParameterValueException", f"unknown invocation type {invocation_type}"
            )

    def _is_invoke_path(self) -> bool:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts == ["invoke"]:
            return True
        is_api_path = len(parts) == 4 and parts[0::3] == ["2015-03-31", "invocations"]
        return is_api_path and parts[1] == "functions" and self._server.names_function(parts[2])

    def _read_event(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return json.loads(body) if body.strip() else {}

    def _invoke_synchronously(self, event: Any) -> None:
        invocation = self._server.invoker.invoke(event, source="HTTP")
        body, function_error = _invocation_body(invocation)
        headers = {"X-Amzn-RequestId": invocation.request_id, "X-Amz-Executed-Version": "$LATEST"}
        if function_error:
            headers["X-Amz-Function-Error"] = "Unhandled"
        self._send(HTTPStatus.OK, body, headers)

    def _send_not_found(self) -> None:
        self._send_json(
            HTTPStatus.NOT_FOUND,
            {"Type": "User", "message": f"no such function or route: {self.path}"},
            {"X-Amzn-ErrorType": "ResourceNotFoundException"},
        )

    def _send_error(self, error_type: str, message: str) -> None:
        self._send_json(
            HTTPStatus.BAD_REQUEST,
            {"Type": "User", "message": message},
            {"X-Amzn-ErrorType": error_type},
        )

    def _send_json(
        self, status: HTTPStatus, document: object, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(document).encode(), headers)

    def _send(
        self, status: HTTPStatus, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


# ---------------------------------------------------------------------------------------------
# Process entrypoint
# ---------------------------------------------------------------------------------------------
EXIT_OK = 0
EXIT_RUNTIME_FAILURE = 1
EXIT_BAD_SPEC_OR_HANDLER = 2


def load_spec(path: Path) -> WorkerSpec:
    return WorkerSpec.model_validate_json(path.read_bytes())


def _reserve_stdout() -> IO[str]:
    """Keep the real stdout for the READY line; route everything else written to it to stderr."""
    sys.stdout.flush()
    ready = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return ready


def _install_signal_handlers(stop: threading.Event) -> None:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def _sqs_client(spec: WorkerSpec) -> SQSClient:
    return boto3.client(
        "sqs",
        region_name=spec.region,
        endpoint_url=spec.aws_endpoint_url,
        config=Config(
            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10
        ),
    )


def _streams_client(spec: WorkerSpec) -> Any:
    return boto3.client(
        "dynamodbstreams",
        region_name=spec.region,
        endpoint_url=spec.aws_endpoint_url,
        config=Config(
            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10
        ),
    )


def _stream_pollers(
    spec: WorkerSpec, identity: FunctionIdentity, invoker: Invoker, stop: threading.Event
) -> list[threading.Thread]:
    if not spec.stream_sources:
        return []
    streams = _streams_client(spec)
    needs_sqs = any(source.on_failure_destination for source in spec.stream_sources)
    sqs = _sqs_client(spec) if needs_sqs else None
    return [
        StreamPoller(
            source,
            streams=streams,
            sqs=sqs,
            invoker=invoker,
            function_arn=identity.arn,
            region=spec.region,
            retry_backoff_s=spec.retry_backoff_s,
            stop=stop,
            checkpoints=(
                CheckpointFile(Path(spec.checkpoint_dir) / f"{source.event_id}.json")
                if spec.checkpoint_dir
                else None
            ),
        ).thread
        for source in spec.stream_sources
    ]


def _start_sources(
    spec: WorkerSpec, identity: FunctionIdentity, invoker: Invoker, stop: threading.Event
) -> list[threading.Thread]:
    threads = [
        Scheduler(source, identity, invoker, spec.region, stop).thread
        for source in spec.schedule_sources
    ]
    threads += _stream_pollers(spec, identity, invoker, stop)
    if spec.sqs_sources:
        sqs = _sqs_client(spec)
        threads += [
            SqsPoller(
                source,
                sqs=sqs,
                invoker=invoker,
                region=spec.region,
                retry_backoff_s=spec.retry_backoff_s,
                stop=stop,
                lease_s=spec.sqs_lease_s,
            ).thread
            for source in spec.sqs_sources
        ]
    for thread in threads:
        thread.start()
    return threads


def _wait_for_stop(stop: threading.Event, threads: Sequence[threading.Thread]) -> int:
    while not stop.wait(HEALTH_CHECK_INTERVAL_S):
        dead = [thread.name for thread in threads if not thread.is_alive()]
        if dead:
            logger.error("event source threads died: %s; exiting", ", ".join(dead))
            return EXIT_RUNTIME_FAILURE
    return EXIT_OK


def _announce(server: _InvokeServer, ready: IO[str]) -> None:
    host, port = server.server_address[:2]
    host = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)  # noqa: S104 (comparison only)
    ready.write(f"READY {json.dumps({'invoke_url': f'http://{host}:{port}/invoke'})}\n")
    ready.close()


def serve(
    spec: WorkerSpec,
    handler: Handler,
    identity: FunctionIdentity,
    ready: IO[str],
    stop: threading.Event,
) -> int:
    """Serve invokes and event sources until `stop` is set; finish the batch in hand."""
    invoker = Invoker(handler, identity)
    events = _EventQueue(invoker)
    try:
        server = _InvokeServer((spec.invoke_host, spec.invoke_port), invoker, identity, events)
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", spec.invoke_host, spec.invoke_port, exc)
        return EXIT_RUNTIME_FAILURE
    threading.Thread(target=server.serve_forever, name="invoke-http", daemon=True).start()
    _announce(server, ready)
    sources = _start_sources(spec, identity, invoker, stop)
    code = _wait_for_stop(stop, sources)
    stop.set()
    for thread in sources:
        thread.join(spec.timeout + SHUTDOWN_GRACE_S)
    server.shutdown()
    server.server_close()
    events.close()
    logger.info("stopped")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one Lambda function locally")
    parser.add_argument("--spec-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec_file)
    except (OSError, ValidationError) as exc:
        sys.stderr.write(f"worker: cannot start from {args.spec_file}: {exc}\n")
        return EXIT_BAD_SPEC_OR_HANDLER
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s worker[{spec.logical_id}] %(message)s",
    )
    for noisy in ("botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ready = _reserve_stdout()
    stop = threading.Event()
    _install_signal_handlers(stop)
    identity = FunctionIdentity.from_spec(spec)
    _apply_environment(lambda_environment(spec, identity))
    try:
        handler = import_handler(spec)
    except HandlerImportError as exc:
        logger.error("%s", exc)
        return EXIT_BAD_SPEC_OR_HANDLER
    if stop.is_set():  # asked to stop while the handler was importing
        return EXIT_OK
    return serve(spec, handler, identity, ready, stop)


if __name__ == "__main__":
    sys.exit(main())
