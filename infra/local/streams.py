"""DynamoDB Streams event source mapping for the local worker (one poller thread per source).

It reads the table's stream from the moto server the way Lambda's event source mapping does:

* shards from ``DescribeStream`` (re-read every few seconds; a child shard waits until its parent
  is read to the end), each read in order from ``LATEST`` (at worker start) or ``TRIM_HORIZON``;
  shards that appear later are read from their start;
* ``GetRecords`` with a short adaptive pause while the stream is quiet (the moto server serves one
  request at a time, so never a busy loop);
* records that match none of the source's filter patterns are skipped, then batches of up to
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

import base64
import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger("infra.local.worker")

GET_RECORDS_LIMIT = 1000  # DynamoDB Streams' GetRecords maximum
POLL_DELAY_MIN_S = 0.02
POLL_DELAY_MAX_S = 0.2
READ_FAILURE_PAUSE_S = 1.0
SHARD_REFRESH_S = 5.0
CLOCK_SLACK_S = 1.0  # stream record times are approximate (whole seconds, or thereabouts)
RECORD_EVENT_VERSION = "1.1"


# ---------------------------------------------------------------------------------------------
# Event filtering (Lambda's FilterCriteria: EventBridge-style patterns on the record's JSON)
# ---------------------------------------------------------------------------------------------
class FilterPatternError(ValueError):
    """A filter pattern Lambda would refuse (or one with an operator not emulated locally)."""


_MISSING: Any = object()
_NUMERIC_OPERATORS = frozenset({"<", "<=", "=", ">", ">="})
_STRING_OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case"})
_OPERATORS = _STRING_OPERATORS | {"exists", "anything-but", "numeric"}


def check_pattern(pattern: object, path: str = "") -> None:
    """Raise `FilterPatternError` unless `pattern` is a pattern the local matcher evaluates."""
    if not isinstance(pattern, Mapping) or not pattern:
        raise FilterPatternError(f"{path or 'pattern'}: expected a non-empty JSON object")
    for key, rules in pattern.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(rules, Mapping):
            check_pattern(rules, where)
        elif isinstance(rules, list) and rules:
            for rule in rules:
                _check_rule(rule, where)
        else:
            raise FilterPatternError(f"{where}: expected an object or a non-empty array of rules")


def _check_rule(rule: object, where: str) -> None:
    if _is_scalar(rule):
        return
    if not isinstance(rule, Mapping) or len(rule) != 1:
        raise FilterPatternError(f"{where}: a rule is a value or a one-key operator object")
    operator, operand = next(iter(rule.items()))
    if operator not in _OPERATORS:
        raise FilterPatternError(f"{where}: operator {operator!r} is not supported locally")
    if operator in _STRING_OPERATORS and not isinstance(operand, str):
        raise FilterPatternError(f"{where}: {operator} takes a string")
    if operator == "exists" and not isinstance(operand, bool):
        raise FilterPatternError(f"{where}: exists takes true or false")
    if operator == "numeric":
        _check_numeric(operand, where)
    if operator == "anything-but":
        _check_anything_but(operand, where)


def _check_numeric(operand: object, where: str) -> None:
    pairs = list(operand) if isinstance(operand, list) else []
    valid = len(pairs) in (2, 4) and all(
        pairs[index] in _NUMERIC_OPERATORS and _is_number(pairs[index + 1])
        for index in range(0, len(pairs), 2)
    )
    if not valid:
        raise FilterPatternError(f"{where}: numeric takes [op, number] or [op, number, op, number]")


def _check_anything_but(operand: object, where: str) -> None:
    if isinstance(operand, Mapping):
        if len(operand) != 1 or next(iter(operand)) not in _STRING_OPERATORS:
            raise FilterPatternError(f"{where}: anything-but takes values, prefix or suffix")
        return
    values = operand if isinstance(operand, list) else [operand]
    if not values or not all(_is_scalar(value) and value is not None for value in values):
        raise FilterPatternError(f"{where}: anything-but takes a value or a list of values")


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def matches(pattern: Mapping[str, Any], event: object) -> bool:
    """Whether `event` (a JSON document) matches `pattern` (Lambda / EventBridge semantics)."""
    fields = event if isinstance(event, Mapping) else {}
    return all(_field_matches(rules, fields.get(key, _MISSING)) for key, rules in pattern.items())


def matches_any(patterns: Sequence[Mapping[str, Any]], event: object) -> bool:
    """Lambda's filter criteria: no pattern lets everything through, else any one must match."""
    return not patterns or any(matches(pattern, event) for pattern in patterns)


def _field_matches(rules: Any, value: Any) -> bool:
    if isinstance(rules, Mapping):
        if isinstance(value, list):
            return any(matches(rules, item) for item in value)
        return matches(rules, value if isinstance(value, Mapping) else {})
    return any(_rule_matches(rule, value) for rule in rules)


def _rule_matches(rule: Any, value: Any) -> bool:
    if isinstance(rule, Mapping) and "exists" in rule:
        return (value is not _MISSING) == rule["exists"]
    if value is _MISSING:
        return False
    if isinstance(value, list):  # an array matches when any of its elements does
        return any(_rule_matches(rule, item) for item in value)
    if isinstance(rule, Mapping):
        return _operator_matches(*next(iter(rule.items())), value)
    return _equal(rule, value)


def _operator_matches(operator: str, operand: Any, value: Any) -> bool:
    if operator in _STRING_OPERATORS:
        return isinstance(value, str) and _string_matches(operator, operand, value)
    if operator == "numeric":
        return _is_number(value) and _numeric_matches(operand, value)
    return not _anything_but_excludes(operand, value)  # anything-but


def _string_matches(operator: str, operand: str, value: str) -> bool:
    if operator == "prefix":
        return value.startswith(operand)
    if operator == "suffix":
        return value.endswith(operand)
    return value.casefold() == operand.casefold()  # equals-ignore-case


def _numeric_matches(operand: Sequence[Any], value: float) -> bool:
    checks = {
        "<": lambda bound: value < bound,
        "<=": lambda bound: value <= bound,
        "=": lambda bound: value == bound,
        ">": lambda bound: value > bound,
        ">=": lambda bound: value >= bound,
    }
    return all(checks[operand[index]](operand[index + 1]) for index in range(0, len(operand), 2))


def _anything_but_excludes(operand: Any, value: Any) -> bool:
    if isinstance(operand, Mapping):
        operator, text = next(iter(operand.items()))
        return isinstance(value, str) and _string_matches(operator, text, value)
    excluded = operand if isinstance(operand, list) else [operand]
    return any(_equal(item, value) for item in excluded)


def _equal(rule: Any, value: Any) -> bool:
    if isinstance(rule, bool) or isinstance(value, bool) or rule is None or value is None:
        return type(rule) is type(value) and rule == value
    if _is_number(rule) and _is_number(value):
        return bool(rule == value)
    return type(rule) is type(value) and rule == value


# ---------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------
class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OnFailureDestinationSpec(_SpecModel):
    type: Literal["sqs"]
    queue_url: Annotated[str, StringConstraints(min_length=1)]


class StreamSourceSpec(_SpecModel):
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


# ---------------------------------------------------------------------------------------------
# The Lambda event
# ---------------------------------------------------------------------------------------------
_CHANGE_KEYS = (
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "SizeBytes",
    "StreamViewType",
)


def _json_ready(value: Any) -> Any:
    """boto3's parsed attribute values as Lambda's JSON has them (binary as base64)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_ready(item) for item in value]
    return value


def _epoch_seconds(value: Any) -> Any:
    if isinstance(value, datetime):
        return float(math.floor(value.timestamp()))  # the stream rounds down to the second
    return value


def lambda_stream_record(raw: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One record of the Lambda DynamoDB stream event, from one ``GetRecords`` record."""
    change = raw["dynamodb"]
    dynamodb = {key: _json_ready(change[key]) for key in _CHANGE_KEYS if key in change}
    if "ApproximateCreationDateTime" in dynamodb:
        dynamodb["ApproximateCreationDateTime"] = _epoch_seconds(
            change["ApproximateCreationDateTime"]
        )
    record: dict[str, Any] = {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": RECORD_EVENT_VERSION,
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in raw:  # deletes made by TTL
        record["userIdentity"] = {
            "type": raw["userIdentity"]["Type"],
            "principalId": raw["userIdentity"]["PrincipalId"],
        }
    return record


def sequence_number(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


# ---------------------------------------------------------------------------------------------
# Outcome of one batch
# ---------------------------------------------------------------------------------------------
class InvocationOutcome(Protocol):
    @property
    def request_id(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def result(self) -> Any: ...


class Invoke(Protocol):
    def invoke(self, event: Any, source: str) -> InvocationOutcome: ...


@dataclass(frozen=True)
class StreamSettlement:
    """``failed_at``: index of the first record to retry (None when the batch succeeded)."""

    failed_at: int | None
    problem: str | None = None
    function_error: bool = False


def settle_stream_batch(
    ok: bool, result: object, sequence_numbers: Sequence[str], report_batch_item_failures: bool
) -> StreamSettlement:
    """Lambda's rules for a stream batch's outcome, ReportBatchItemFailures included."""
    if not ok:
        return StreamSettlement(0, "the handler raised", function_error=True)
    if not report_batch_item_failures or result is None:
        return StreamSettlement(None)
    if not isinstance(result, Mapping):
        return StreamSettlement(0, f"the response is a {type(result).__name__}, not an object")
    items = result.get("batchItemFailures")
    if items is None or items == []:
        return StreamSettlement(None)
    if not isinstance(items, list):
        return StreamSettlement(0, "batchItemFailures is not a list")
    return _first_reported_failure(items, sequence_numbers)


def _first_reported_failure(items: list[Any], sequence_numbers: Sequence[str]) -> StreamSettlement:
    positions = {number: index for index, number in enumerate(sequence_numbers)}
    failed = []
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return StreamSettlement(0, f"invalid batchItemFailures entry {item!r}")
        failed.append(positions[identifier])
    return StreamSettlement(min(failed), "the handler reported batch item failures")


def _iso(epoch: Any) -> str:
    moment = datetime.fromtimestamp(float(epoch), UTC) if epoch is not None else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def on_failure_record(
    batch: Sequence[Mapping[str, Any]],
    *,
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    request_id: str,
    invoke_count: int,
    function_error: bool,
) -> dict[str, Any]:
    """What Lambda sends to the on-failure destination for a discarded stream batch."""
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response_context["functionError"] = "Unhandled"
    first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": _iso(None),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
            "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
            "batchSize": len(batch),
            "streamArn": stream_arn,
        },
    }


# ---------------------------------------------------------------------------------------------
# Checkpoints that outlive the worker
# ---------------------------------------------------------------------------------------------
class CheckpointFile:
    """One event source's settled positions (``{shard_id: sequence_number}``) and when its first
    poller started, in a JSON file: written (atomically) after every settled batch, read once
    when a poller starts.

    `first_started_at` is None for the first poller of the stack. A later (restarted) poller
    reads a shard it has no position for from TRIM_HORIZON, skipping, for a LATEST source, the
    records older than the first poller: what a LATEST reader would never have seen.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first_started_at: float | None = None
        self._started_at = time.time()
        self._positions: dict[str, str] = {}

    def load(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            self.first_started_at = float(loaded["started_at"])
            self._started_at = self.first_started_at
            self._positions = {str(k): str(v) for k, v in loaded["positions"].items()}
        except FileNotFoundError:
            self._write()  # the first poller: later ones know from when the stack was read
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("ignoring unreadable stream checkpoints in %s", self.path)
            self._write()
        return dict(self._positions)

    def save(self, shard_id: str, sequence: str) -> None:
        if self._positions.get(shard_id) != sequence:
            self._positions[shard_id] = sequence
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        document = {"started_at": self._started_at, "positions": self._positions}
        temporary.write_text(json.dumps(document), encoding="utf-8")
        os.replace(temporary, self.path)


# ---------------------------------------------------------------------------------------------
# The poller
# ---------------------------------------------------------------------------------------------
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
        self._sqs = sqs
        self._invoker = invoker
        self._function_arn = function_arn
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
            shards = self._describe_shards()
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

    def _describe_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": self._source.stream_arn}
        while True:
            description = self._streams.describe_stream(**request)["StreamDescription"]
            shards += description.get("Shards", [])
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            request["ExclusiveStartShardId"] = last

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
                shard.iterator = self._iterator(shard)
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
        self._accept(shard, response.get("Records", []))
        return bool(response.get("Records"))

    def _iterator(self, shard: _Shard) -> str:
        request: dict[str, Any] = {
            "StreamArn": self._source.stream_arn,
            "ShardId": shard.shard_id,
            "ShardIteratorType": shard.position,
        }
        if shard.last_read is not None:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["SequenceNumber"] = shard.last_read
        return str(self._streams.get_shard_iterator(**request)["ShardIterator"])

    def _accept(self, shard: _Shard, raw_records: Sequence[Mapping[str, Any]]) -> None:
        for raw in raw_records:
            record = lambda_stream_record(raw, self._source.stream_arn, self._region)
            shard.last_read = sequence_number(record)
            if self._before_first_reader(record):
                continue
            if not matches_any(self._source.filter_patterns, record):
                continue  # filtered out: checkpointed past without an invocation
            if not shard.pending:
                shard.first_pending_at = time.monotonic()
            shard.pending.append(record)

    def _before_first_reader(self, record: Mapping[str, Any]) -> bool:
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        return (
            self._skip_before is not None
            and isinstance(created, int | float)
            and created < self._skip_before
        )

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
            self._discard(shard, retried, settlement, request_id)

    def _discard(
        self,
        shard: _Shard,
        batch: Sequence[dict[str, Any]],
        settlement: StreamSettlement,
        request_id: str,
    ) -> None:
        document = on_failure_record(
            batch,
            shard_id=shard.shard_id,
            stream_arn=self._source.stream_arn,
            function_arn=self._function_arn,
            request_id=request_id,
            invoke_count=shard.failed_invocations,
            function_error=settlement.function_error,
        )
        self._checkpoint(shard, len(batch))
        destination = self._source.on_failure_destination
        if destination is None or self._sqs is None:
            logger.error(
                "%s: retries exhausted; %d records discarded (no on-failure destination): %s",
                self._source.event_id,
                len(batch),
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
            len(batch),
            destination.queue_url,
        )
