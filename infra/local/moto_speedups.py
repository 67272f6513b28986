"""Cheaper moto request handling for the local stack's hottest calls; responses unchanged.

Every request holds the moto server's one-at-a-time lock (`infra.local.motoserver`), so the
CPU a request costs is time every other request waits. Measured on moto 5.2 (server-side thread
CPU per request, a table of 3,000 ticket-sized items with a NEW_AND_OLD_IMAGES stream):

* ``GetRecords`` answered with moto's model-driven response serializer: 1.4 ms for an empty
  read, then about 1.1 ms more per record (it walks the botocore shape of every attribute
  value of both images): 24 ms for a read of 20 records. A stream record is already stored in
  its wire form, so it is written here with `json.dumps`; only the creation time (epoch
  seconds, truncated to the millisecond) and binary values (base64) need the serializer's
  conversions.
* ``ReceiveMessage`` and ``SendMessage(Batch)``: moto checks each received message's retention
  by building all the queue's attributes, three times; the attributes include the approximate
  message counts, each a scan of every message in the queue that asks the clock (through
  ``datetime``) once per message. A receive cost O(queue depth) per message: 18 ms for ten
  messages from a queue of ~100, and it grows as the stack falls behind. Here the retention
  check reads the one attribute it needs, and SQS asks the clock with `time.time` (the same
  clock, without building two datetimes per call).
* DynamoDB's data-plane calls (GetItem, BatchGetItem, Query, PutItem, UpdateItem,
  TransactWriteItems ...) go through the same model-driven serializer, item by item and
  attribute by attribute (~9% of the server's CPU at 8 faults/s); their results are plain
  attribute-value documents, written here with `json.dumps` and the same two conversions.
  Errors and every other call keep moto's serializer.
* every request: moto finds the service by listing its own package directory
  (`list_of_moto_modules`, ~60 `stat` calls) twice, and lists the handler class's methods with
  `inspect.getmembers`; both answers never change while the server runs, so they are cached.
* every request, measured with cProfile at the moto server (GetItem, UpdateItem, SendMessage,
  ReceiveMessage): iterating the request's headers mapped each name through
  `environ_key_for_header` to look for S3 metadata spellings to preserve (10 % of the server's
  time), even when the request has none: now only when it has some; the request id (52 random
  characters, one `random.choice` call each: 3 %) is drawn in one `choices` call from the same
  generator; and the action name's snake_case form (4 %) is cached per name.
"""

from __future__ import annotations

import base64
import calendar
import functools
import json
import string
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from moto import backends
from moto.core import responses as moto_responses
from moto.core import utils as moto_utils
from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY, EnvironHeaders
from moto.core.responses import ActionResult
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_api._internal import mock_random
from moto.sqs import models as sqs_models
from moto.sqs.models import Message, SQSBackend
from moto.utilities import aws_headers
from werkzeug.datastructures import EnvironHeaders as WerkzeugEnvironHeaders

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
GET_RECORDS_DEFAULT_LIMIT = 1000


def epoch_seconds(moment: datetime) -> int | float:
    """A timestamp as moto's JSON serializer writes it (milliseconds at most)."""
    whole = calendar.timegm(moment.timetuple())
    if moment.microsecond:
        return whole + (moment.microsecond // 1000) / 1000.0
    return whole


def _wire_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_seconds(value)
    if isinstance(value, bytes | bytearray):  # B and BS attribute values
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def get_records_body(result: dict[str, Any]) -> str:
    """The ``GetRecords`` response body for the backend's result (records in wire form)."""
    body: dict[str, Any] = {"Records": result["Records"]}
    if result.get("NextShardIterator") is not None:
        body["NextShardIterator"] = result["NextShardIterator"]
    return json.dumps(body, default=_wire_value)


def _fast_get_records(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_records(self: DynamoDBStreamsHandler) -> Any:
        arn = self._get_param("ShardIterator")
        backend: DynamoDBStreamsBackend = self.backend
        if arn not in backend.shard_iterators:
            return original(self)  # moto's own answer for an unknown iterator
        limit = self._get_param("Limit") or GET_RECORDS_DEFAULT_LIMIT
        result = backend.get_records(arn, limit)
        return 200, {"Content-Type": JSON_CONTENT_TYPE}, get_records_body(result)

    return get_records


DYNAMODB_DATA_PLANE = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "TransactWriteItems",
        "UpdateItem",
    }
)


def _drop_none(document: dict[str, Any]) -> dict[str, Any]:
    # moto's serializer leaves out members whose value is None
    return {key: value for key, value in document.items() if value is not None}


def _fast_dynamodb_serialized(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def serialized(self: DynamoHandler, action_result: ActionResult) -> Any:
        result = action_result.result
        action = self.get_endpoint_name(self.headers)
        if not isinstance(result, dict) or action not in DYNAMODB_DATA_PLANE:
            return original(self, action_result)
        headers = {**self.response_headers, "Content-Type": JSON_CONTENT_TYPE, "status": 200}
        return 200, headers, json.dumps(_drop_none(result), default=_wire_value)

    return serialized


def _unix_time(dt: datetime | None = None) -> float:
    return time.time() if dt is None else _ORIGINAL_UNIX_TIME(dt)


def _unix_time_millis(dt: datetime | None = None) -> float:
    return _unix_time(dt) * 1000.0


def _retained(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue = self.get_queue(queue_name)
    retention_s = int(queue.message_retention_period)  # type: ignore[attr-defined]
    return bool(retention_s + (message.sent_timestamp or 0) / 1000 > _unix_time())


@functools.cache
def _moto_modules() -> tuple[str, ...]:
    return tuple(_ORIGINAL_LIST_OF_MOTO_MODULES())


def _cached_moto_modules() -> Iterable[str]:
    return _moto_modules()


@functools.cache
def _method_names(clazz: type) -> list[str]:
    return list(_ORIGINAL_METHOD_NAMES(clazz))


def _cached_method_names(clazz: object) -> list[str]:
    return _method_names(clazz) if isinstance(clazz, type) else _ORIGINAL_METHOD_NAMES(clazz)


def _environ_headers_iter(self: EnvironHeaders) -> Iterator[tuple[str, str]]:
    if not self.environ.get(PRESERVED_HEADER_NAMES_ENVIRON_KEY):
        return WerkzeugEnvironHeaders.__iter__(self)  # nothing to rename: werkzeug's own names
    return _ORIGINAL_HEADERS_ITER(self)


_REQUEST_ID_ALPHABET = string.ascii_letters + string.digits


def _request_id(headerdict: dict[str, Any] | None = None) -> str:
    request_id = "".join(mock_random.choices(_REQUEST_ID_ALPHABET, k=52))
    if headerdict is not None and isinstance(headerdict, dict):
        headerdict.update({"x-amzn-requestid": request_id})
    return request_id


_snake_case = functools.lru_cache(maxsize=4096)(moto_utils.camelcase_to_underscores)

_ORIGINAL_HEADERS_ITER = EnvironHeaders.__iter__
_ORIGINAL_LIST_OF_MOTO_MODULES = backends.list_of_moto_modules
_ORIGINAL_METHOD_NAMES = moto_responses.method_names_from_class
_ORIGINAL_UNIX_TIME = sqs_models.unix_time


def apply() -> None:
    """Install the speed-ups (idempotent)."""
    if not getattr(DynamoDBStreamsHandler.get_records, "_aftercare_fast", False):
        fast = _fast_get_records(DynamoDBStreamsHandler.get_records)
        fast._aftercare_fast = True  # type: ignore[attr-defined]
        DynamoDBStreamsHandler.get_records = fast  # type: ignore[method-assign]
    if not getattr(DynamoHandler.serialized, "_aftercare_fast", False):
        fast_serialized = _fast_dynamodb_serialized(DynamoHandler.serialized)
        fast_serialized._aftercare_fast = True  # type: ignore[attr-defined]
        DynamoHandler.serialized = fast_serialized  # type: ignore[method-assign]
    backends.list_of_moto_modules = _cached_moto_modules
    moto_responses.method_names_from_class = _cached_method_names
    sqs_models.unix_time = _unix_time
    sqs_models.unix_time_millis = _unix_time_millis
    SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]
    EnvironHeaders.__iter__ = _environ_headers_iter  # type: ignore[method-assign]
    aws_headers.gen_amzn_requestid_long = _request_id
    moto_responses.gen_amzn_requestid_long = _request_id
    moto_responses.camelcase_to_underscores = _snake_case


# What each replacement stands in for (tests/unit/test_moto_pins.py checks moto's signatures).
_retained.__wrapped__ = SQSBackend.is_message_valid_based_on_retention_period  # type: ignore[attr-defined]
_unix_time.__wrapped__ = sqs_models.unix_time  # type: ignore[attr-defined]
_unix_time_millis.__wrapped__ = sqs_models.unix_time_millis  # type: ignore[attr-defined]
_cached_moto_modules.__wrapped__ = backends.list_of_moto_modules  # type: ignore[attr-defined]
_cached_method_names.__wrapped__ = moto_responses.method_names_from_class  # type: ignore[attr-defined]
_environ_headers_iter.__wrapped__ = EnvironHeaders.__iter__  # type: ignore[attr-defined]
_request_id.__wrapped__ = aws_headers.gen_amzn_requestid_long  # type: ignore[attr-defined]
