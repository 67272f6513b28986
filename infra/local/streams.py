"""DynamoDB Streams event source mapping for the local worker (one poller thread per source).

It reads the table's stream from the moto server the way Lambda's event source mapping does:

* shards from ``DescribeStream`` (re-read every few seconds; a child shard waits until its parent
  is read to the end), each read in order from ``LATEST`` (at worker start) or ``TRIM_HORIZON``;
  shards that appear later are read from their start;
* ``GetRecords`` with a short adaptive pause while the stream is quiet (the moto server serves one
  request at a time, so never a busy loop);
* records that match none of the source's filter patterns (`infra.local.event_filter`) are
  skipped, then batches of up to
  ``batch_size`` (gathered for at most ``max_batching_window_s``) go to the handler as the exact
  Lambda DynamoDB stream event;
* success checkpoints past the batch; a handler error retries the batch (bisecting it if asked);
  ``batchItemFailures`` (``itemIdentifier`` = the record's ``SequenceNumber``) checkpoints up to
  the lowest failed record and retries from it; once ``maximum_retry_attempts`` are used the
  batch is discarded, and its description goes to the on-failure SQS queue if there is one.

Deviations from AWS, on purpose:

* Checkpoints live in memory, and in a `CheckpointFile` when the worker has a checkpoint
  directory (the local stack gives every worker one): a restarted worker resumes each shard after
  the last record of its last settled batch, so a crash mid-batch re-delivers that batch (at
  least once, as in AWS) and loses nothing. A shard it has no position for (its predecessor
  settled nothing there) is read from TRIM_HORIZON, skipping for a LATEST source the records
  from before the first poller started.
* Retries wait ``retry_backoff_s`` (the worker's, 1 s by default) instead of Lambda's backoff.
* Splitting a batch on a function error does not count as a retry attempt; after a batch
  succeeds the full ``batch_size`` applies again.
* With ``maximum_retry_attempts: -1`` a failing record is retried for as long as the worker runs
  (AWS gives up when the record leaves the stream after 24 hours).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, StringConstraints, field_validator

from infra.local.event_filter import check_pattern, matches_any
from infra.local.process import SpecModel
from infra.local.stream_checkpoints import CheckpointFile
from infra.local.stream_events import (
    StreamSettlement,
    created_before,
    lambda_stream_record,
    on_failure_record,
    sequence_number,
    settle_stream_batch,
    wire_stream_record,
)
from infra.local.stream_wire import WIRE_RECORDS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger("infra.local.worker")

GET_RECORDS_LIMIT = 1000  # DynamoDB Streams' GetRecords maximum
POLL_DELAY_MIN_S = 0.02
POLL_DELAY_MAX_S = 0.2
READ_FAILURE_PAUSE_S = 1.0
SHARD_REFRESH_S = 5.0
CLOCK_SLACK_S = 1.0  # stream record times are approximate (whole seconds, or thereabouts)


class OnFailureDestinationSpec(SpecModel):
    type: Literal["sqs"]
    queue_url: Annotated[str, StringConstraints(min_length=1)]


class StreamSourceSpec(SpecModel):
    """One DynamoDB event source of a function (SAM ``Type: DynamoDB``)."""

    event_id: str
    stream_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[\w-]*:dynamodb:.+/stream/.+")]
    table_name: Annotated[str, StringConstraints(min_length=1)]
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    starting_position: Literal["LATEST", "TRIM_HORIZON"]
    max_batching_window_s: Annotated[float, Field(ge=0, le=300)] = 0
    report_batch_item_failures: bool = False
    maximum_retry_attempts: Annotated[int, Field(ge=-1, le=10_000)] = -1
    bisect_batch_on_function_error: bool = False
    filter_patterns: list[dict[str, Any]] = Field(default_factory=list)
    on_failure_destination: OnFailureDestinationSpec | None = None

    @field_validator("filter_patterns")
    @classmethod
    def _patterns_are_valid(cls, patterns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for pattern in patterns:
            check_pattern(pattern)
        return patterns


class InvocationOutcome(Protocol):
    @property
    def request_id(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def result(self) -> Any: ...


class Invoke(Protocol):
    def invoke(self, event: Any, source: str) -> InvocationOutcome: ...


@dataclass
class _Shard:
    """One shard's read position, the filtered records read but not yet checkpointed, retries."""

    shard_id: str
    parent_id: str | None
    position: str  # where to start when there is no iterator yet: LATEST / TRIM_HORIZON
    iterator: str | None = None
    last_read: str | None = None  # sequence number of the last record read
    end_reached: bool = False  # the shard is closed and read to its end
    pending: list[dict[str, Any]] = field(default_factory=list)
    first_pending_at: float = 0.0
    batch_limit: int = 0
    failed_invocations: int = 0  # for the batch at the head of `pending`
    retry_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.end_reached and not self.pending


class StreamPoller:
    """One DynamoDB stream event source mapping: read shards, filter, batch, invoke, settle."""

    def __init__(
        self,
        source: StreamSourceSpec,
        *,
        streams: Any,  # a boto3 "dynamodbstreams" client
        sqs: SQSClient | None,
        invoker: Invoke,
        function_arn: str,
        region: str,
        retry_backoff_s: float,
        stop: threading.Event,
        checkpoints: CheckpointFile | None = None,
    ) -> None:
        self._source = source
        self._checkpoints = checkpoints
        self._resume_from = checkpoints.load() if checkpoints is not None else {}
        restarted_at = checkpoints.first_started_at if checkpoints is not None else None
        self._restarted = restarted_at is not None
        # Restarted LATEST reader: records older than the first reader were never its business.
        self._skip_before = (
            restarted_at - CLOCK_SLACK_S
            if restarted_at is not None and source.starting_position == "LATEST"
            else None
        )
        self._streams = streams
        self._invoker = invoker
        self._on_failure = _OnFailure(source, sqs, function_arn)
        self._region = region
        self._retry_backoff_s = retry_backoff_s
        self._stop = stop
        self._shards: dict[str, _Shard] = {}
        self._finished: set[str] = set()
        self._refresh_at = 0.0
        self._read_failing = False
        self._delay = POLL_DELAY_MIN_S
        self.thread = threading.Thread(
            target=self._run, name=f"stream-{source.event_id}", daemon=True
        )

    def _run(self) -> None:
        logger.info(
            "reading %s from %s for %s",
            self._source.stream_arn,
            self._source.starting_position,
            self._source.event_id,
        )
        while not self._stop.is_set() and not self._refresh_shards(initial=True):
            self._stop.wait(READ_FAILURE_PAUSE_S)
        while not self._stop.is_set():
            busy = False
            for shard in self._readable():
                busy = self._step(shard) or busy
                if self._stop.is_set():
                    return
            if time.monotonic() >= self._refresh_at:
                self._refresh_shards(initial=False)
            self._pause(busy)

    def _pause(self, busy: bool) -> None:
        if busy:
            self._delay = POLL_DELAY_MIN_S
            return
        self._stop.wait(self._delay)
        self._delay = min(self._delay * 2, POLL_DELAY_MAX_S)

    # -- shards ------------------------------------------------------------------------------
    def _refresh_shards(self, *, initial: bool) -> bool:
        self._refresh_at = time.monotonic() + SHARD_REFRESH_S
        try:
            shards = describe_shards(self._streams, self._source.stream_arn)
        except (BotoCoreError, ClientError) as exc:
            self._report_read_failure(f"cannot describe {self._source.stream_arn}: {exc}")
            return False
        # A restarted poller reads what it has no checkpoint for from the start (see
        # CheckpointFile): its predecessor may have died before it settled anything.
        fresh = initial and not self._restarted
        position = self._source.starting_position if fresh else "TRIM_HORIZON"
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._shards and shard_id not in self._finished:
                self._shards[shard_id] = _Shard(
                    shard_id=shard_id,
                    parent_id=shard.get("ParentShardId"),
                    position=position,
                    batch_limit=self._source.batch_size,
                    last_read=self._resume_from.get(shard_id),  # read on after the checkpoint
                )
                resume = self._resume_from.get(shard_id)
                logger.info(
                    "%s: reading shard %s%s",
                    self._source.event_id,
                    shard_id,
                    f" after checkpoint {resume}" if resume else "",
                )
        return True

    def _readable(self) -> list[_Shard]:
        """Shards to read now: a child waits until its parent is read to the end."""
        for shard_id in [key for key, shard in self._shards.items() if shard.finished]:
            del self._shards[shard_id]
            self._finished.add(shard_id)
        return [shard for shard in self._shards.values() if shard.parent_id not in self._shards]

    # -- reading -----------------------------------------------------------------------------
    def _step(self, shard: _Shard) -> bool:
        """Read and/or invoke once for `shard`; True when something happened."""
        read = self._read(shard) if len(shard.pending) < shard.batch_limit else False
        if not shard.pending or time.monotonic() < shard.retry_at:
            return read
        if self._gathering(shard):
            return read
        self._process(shard)
        return True

    def _gathering(self, shard: _Shard) -> bool:
        """True while a partial batch may still grow within the batching window."""
        window_ends = shard.first_pending_at + self._source.max_batching_window_s
        partial = len(shard.pending) < shard.batch_limit and not shard.end_reached
        return partial and time.monotonic() < window_ends

    def _read(self, shard: _Shard) -> bool:
        if shard.end_reached:
            return False
        try:
            if shard.iterator is None:
                shard.iterator = shard_iterator(self._streams, self._source.stream_arn, shard)
            response = self._streams.get_records(
                ShardIterator=shard.iterator, Limit=GET_RECORDS_LIMIT
            )
        except (BotoCoreError, ClientError) as exc:
            shard.iterator = None  # expired or lost: get a new one from the last record read
            self._report_read_failure(f"cannot read shard {shard.shard_id}: {exc}")
            self._stop.wait(READ_FAILURE_PAUSE_S)
            return False
        if self._read_failing:
            logger.info("%s: reading the stream again", self._source.event_id)
            self._read_failing = False
        shard.iterator = response.get("NextShardIterator")
        shard.end_reached = shard.iterator is None
        records = self._lambda_records(response)
        self._accept(shard, records)
        return bool(records)

    def _lambda_records(self, response: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The answer's records in the Lambda event's form: from the wire form when the client
        keeps it (`infra.local.stream_wire`), else from boto3's parsed records."""
        arn, region = self._source.stream_arn, self._region
        if WIRE_RECORDS in response:
            return [wire_stream_record(raw, arn, region) for raw in response[WIRE_RECORDS]]
        return [lambda_stream_record(raw, arn, region) for raw in response.get("Records", [])]

    def _accept(self, shard: _Shard, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            shard.last_read = sequence_number(record)
            if self._skip_before is not None and created_before(record, self._skip_before):
                continue
            if not matches_any(self._source.filter_patterns, record):
                continue  # filtered out: checkpointed past without an invocation
            if not shard.pending:
                shard.first_pending_at = time.monotonic()
            shard.pending.append(record)

    def _report_read_failure(self, message: str) -> None:
        if not self._read_failing:
            logger.warning("%s: %s", self._source.event_id, message)
        self._read_failing = True

    # -- invoking and settling ---------------------------------------------------------------
    def _process(self, shard: _Shard) -> None:
        batch = shard.pending[: shard.batch_limit]
        invocation = self._invoker.invoke(
            {"Records": batch}, source=f"DynamoDB {self._source.event_id}"
        )
        numbers = [sequence_number(record) for record in batch]
        settlement = settle_stream_batch(
            invocation.ok, invocation.result, numbers, self._source.report_batch_item_failures
        )
        if settlement.failed_at is None:
            self._checkpoint(shard, len(batch))
            logger.info("%s: batch of %d processed", self._source.event_id, len(batch))
        else:
            self._failed(shard, batch, settlement, invocation.request_id)

    def _checkpoint(self, shard: _Shard, count: int) -> None:
        settled = sequence_number(shard.pending[count - 1]) if count else None
        del shard.pending[:count]
        if not shard.pending and shard.last_read is not None:
            settled = shard.last_read  # the filtered-out records read since are settled too
        if self._checkpoints is not None and settled is not None:
            self._checkpoints.save(shard.shard_id, settled)
        shard.batch_limit = self._source.batch_size
        shard.failed_invocations = 0
        shard.retry_at = 0.0

    def _failed(
        self,
        shard: _Shard,
        batch: Sequence[dict[str, Any]],
        settlement: StreamSettlement,
        request_id: str,
    ) -> None:
        failed_at = settlement.failed_at or 0
        if failed_at:
            self._checkpoint(shard, failed_at)  # the records before the first failure are done
        retried = batch[failed_at:]
        shard.retry_at = time.monotonic() + self._retry_backoff_s
        logger.warning(
            "%s: batch of %d failed (%s); retrying from sequence number %s",
            self._source.event_id,
            len(batch),
            settlement.problem,
            sequence_number(retried[0]),
        )
        bisect = self._source.bisect_batch_on_function_error and settlement.function_error
        if bisect and len(retried) > 1:
            shard.batch_limit = math.ceil(len(retried) / 2)
            return  # splitting does not count as a retry
        shard.failed_invocations += 1
        if 0 <= self._source.maximum_retry_attempts < shard.failed_invocations:
            document = self._on_failure.describe(shard, retried, settlement, request_id)
            self._checkpoint(shard, len(retried))
            self._on_failure.send(document, len(retried))


class _OnFailure:
    """Where a batch goes once its retries are used up: the on-failure SQS queue, or the log."""

    def __init__(self, source: StreamSourceSpec, sqs: SQSClient | None, function_arn: str) -> None:
        self._source = source
        self._sqs = sqs
        self._function_arn = function_arn

    def describe(
        self,
        shard: _Shard,
        batch: Sequence[dict[str, Any]],
        settlement: StreamSettlement,
        request_id: str,
    ) -> dict[str, Any]:
        """What Lambda sends to the destination (or logs) for the discarded `batch`."""
        return on_failure_record(
            batch,
            shard_id=shard.shard_id,
            stream_arn=self._source.stream_arn,
            function_arn=self._function_arn,
            request_id=request_id,
            invoke_count=shard.failed_invocations,
            function_error=settlement.function_error,
        )

    def send(self, document: Mapping[str, Any], count: int) -> None:
        destination = self._source.on_failure_destination
        if destination is None or self._sqs is None:
            logger.error(
                "%s: retries exhausted; %d records discarded (no on-failure destination): %s",
                self._source.event_id,
                count,
                json.dumps(document["DDBStreamBatchInfo"]),
            )
            return
        try:
            self._sqs.send_message(QueueUrl=destination.queue_url, MessageBody=json.dumps(document))
        except (BotoCoreError, ClientError) as exc:
            logger.error("%s: cannot send to the on-failure queue: %s", self._source.event_id, exc)
            return
        logger.warning(
            "%s: retries exhausted; %d records discarded, described in %s",
            self._source.event_id,
            count,
            destination.queue_url,
        )


def describe_shards(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every shard of the stream (DescribeStream, page by page)."""
    shards: list[dict[str, Any]] = []
    request: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        description = streams.describe_stream(**request)["StreamDescription"]
        shards += description.get("Shards", [])
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shards
        request["ExclusiveStartShardId"] = last


def shard_iterator(streams: Any, stream_arn: str, shard: _Shard) -> str:
    """An iterator after the last record read, else at the shard's starting position."""
    request: dict[str, Any] = {
        "StreamArn": stream_arn,
        "ShardId": shard.shard_id,
        "ShardIteratorType": shard.position,
    }
    if shard.last_read is not None:
        request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
        request["SequenceNumber"] = shard.last_read
    return str(streams.get_shard_iterator(**request)["ShardIterator"])
