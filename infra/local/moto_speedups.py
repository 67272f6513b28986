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
* every item written (PutItem, UpdateItem, each put of a transaction, every deep copy that a
  stream image or a transaction's rollback makes goes through `Item.__init__`): moto's
  `LimitedSizeDict` enforces DynamoDB's 400 KB item limit by re-measuring the *whole* item on
  every attribute set, so building an item of n attributes walks it n times (O(n^2)
  `DynamoType.size` calls, each recursive through maps and lists): 16 % of the DynamoDB
  server's CPU under the whole stack's load (cProfile, 20 faults/s). Here the dict remembers the
  size it last measured and adds each new value's size to it; it measures the whole item again
  only when that running figure comes near the limit (or was never taken), so an item over the
  limit is still refused with moto's own `ItemSizeTooLarge` at the same attribute.
* every UpdateItem (and each Update of a transaction) parses its UpdateExpression twice (once
  in the handler to list the placeholders, once in the backend), 1.7 ms a parse; every
  condition expression is lexed character by character with a list of regular expressions
  (1.7 ms in all per write). The stack sends a few dozen distinct expression texts over and
  over, and the result depends on the text alone: the update AST is cached per text (moto only
  reads it, and its validator works on a deep copy) and so are the condition lexer's tokens
  (each call gets new token nodes; names and values are still substituted per call). An
  invalid expression raises on every call, as before (nothing is cached for it).
* every DynamoDB data-plane request body is parsed by walking its botocore input shape member
  by member (6 % of the DynamoDB server's CPU). For these operations that walk changes nothing
  a boto3 client sends except binary values (base64 text becomes bytes), so a body without a
  binary attribute value is taken from `json.loads` as it is; any other body, and every other
  operation, keeps moto's parser.
* every ``GetRecords`` makes a new shard iterator whose id is 472 bytes of `os.urandom`: a
  ``getrandom`` system call, during which the serving thread lets the GIL go while it holds the
  server's lock; under load it then waits for the GIL behind the connection threads (5 ms
  switch interval) and every queued request waits with it: 1.5 ms of lock time per GetRecords
  on average in the whole-stack profile (`make profile`, 20 faults/s), the most own time of any
  function of the DynamoDB server. The id only has to be unique (it is looked up as given): it
  is drawn from moto's own generator (`mock_random`, pure Python, no system call) instead.
* every ``SendMessage`` (and each message of a batch) reads the queue's ``attributes`` for one
  of them (content-based deduplication): moto builds them all, converting each name to
  snake_case character by character, and counts the queue's messages three times (visible,
  delayed, in flight), asking the clock once per message each time: a third of the main
  server's serial time in SendMessage under the whole stack's load (`make profile`). Here the
  names are converted once (cached) and the three counts are taken in one pass at one reading
  of the clock; the attributes are the same.
* every UpdateItem (and each Update of a transaction) is validated by ten processors, each a
  depth-first walk of the update's syntax tree that, at every node, rebuilt the processor's
  map of node classes (a dict, then a tuple of its keys) and asked `isinstance` of moto's
  abstract node classes (`abc` checks) up to three times: a fifth of the DynamoDB server's
  serial time under the whole stack's load (`make profile`). Here each walk builds the map
  once and which processor (if any) takes a node is decided once per node class; the walk,
  its order, the pre-child hook and the tree it returns are moto's.
"""

from __future__ import annotations

import base64
import calendar
import functools
import json
import re
import string
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from moto import backends
from moto.core import responses as moto_responses
from moto.core import utils as moto_utils
from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY, EnvironHeaders
from moto.core.responses import ActionResult
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models import dynamo_type as moto_dynamo_type
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
    DepthFirstTraverser,
    Node,
)
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams import models as streams_models
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_api._internal import mock_random
from moto.sqs import models as sqs_models
from moto.sqs.models import Message, Queue, SQSBackend
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


# A binary attribute value ("B" or "BS"), the one thing the shape walk converts in these calls.
_BINARY_VALUE = re.compile(rb'"BS?"\s*:')


def _fast_dynamodb_parse(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def parse_parameters(self: DynamoHandler, request: Any) -> None:
        body = request.data
        if (
            self.get_endpoint_name(self.headers) not in DYNAMODB_DATA_PLANE
            or not body
            or _BINARY_VALUE.search(body)
        ):
            return original(self, request)
        try:
            parsed = json.loads(body)
        except ValueError:
            return original(self, request)
        if not isinstance(parsed, dict):
            return original(self, request)
        self.params = parsed
        return None

    return parse_parameters


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


_MESSAGE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
)


def _message_counts(queue: Queue) -> dict[str, int]:
    """moto's three approximate counts (`Queue.messages`, `approximate_number_of_messages_*`),
    from one pass over the queue's messages at one reading of the clock."""
    now = _unix_time_millis()
    available = delayed = in_flight = 0
    for message in queue._messages:
        visible = now > message.visible_at
        is_delayed = now < message.delayed_until
        available += visible and not is_delayed
        delayed += is_delayed
        in_flight += not visible
    return dict(zip(_MESSAGE_COUNTS, (available, delayed, in_flight), strict=True))


def _queue_attributes(self: Queue) -> dict[str, Any]:
    """moto's `Queue.attributes`, with the counts from `_message_counts` and cached names."""
    counts = _message_counts(self)
    result: dict[str, Any] = {
        name: counts[name] if name in counts else getattr(self, _snake_case(name))
        for name in self.BASE_ATTRIBUTES
    }
    groups = (
        (self.fifo_queue, self.FIFO_ATTRIBUTES),
        (self.kms_master_key_id, self.KMS_ATTRIBUTES),  # type: ignore[attr-defined]
    )
    for present, names in groups:
        if present:
            result.update({name: getattr(self, _snake_case(name)) for name in names})
    if self.policy:
        result["Policy"] = self.policy
    if self.redrive_policy:
        result["RedrivePolicy"] = json.dumps(self.redrive_policy)
    return {
        key: str(value).lower() if isinstance(value, bool) else value
        for key, value in result.items()
    }


_NODE_KINDS: dict[type, bool] = {}  # class -> is it a moto syntax tree node


def _is_node(kind: type) -> bool:
    if kind not in _NODE_KINDS:
        _NODE_KINDS[kind] = issubclass(kind, Node)
    return _NODE_KINDS[kind]


def _traverse(self: DepthFirstTraverser, root: Any) -> Any:
    """`DepthFirstTraverser.traverse`: moto's depth-first walk, with the processing map built
    once per walk and the processor of each node class chosen once (first match, in order)."""
    processors = tuple(self._processing_map().items())
    chosen: dict[type, Callable[[Any], Any] | None] = {}
    before_child = self.pre_processing_of_child

    def processor_of(kind: type) -> Callable[[Any], Any] | None:
        if kind not in chosen:
            chosen[kind] = next((p for key, p in processors if issubclass(kind, key)), None)
        return chosen[kind]

    def walk(node: Any, child_id: int = -1) -> Any:
        if not _is_node(type(node)):
            return node
        parent = node.parent
        if node.children is not None:
            for index, child in enumerate(node.children):
                before_child(node, index)
                walk(child, index)
        process = processor_of(type(node))
        if process is not None:
            node = process(node)
            node.parent = parent
            if parent:
                parent.children[child_id] = node
        return node

    return walk(root)


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


# What `moto.dynamodbstreams.models` sees as `os` (its only use: a shard iterator's id bytes).
_ITERATOR_ID_SOURCE = types.SimpleNamespace(urandom=mock_random.randbytes)


# moto's limit for an item (between AWS's documented 400 KB and the measured 409-410 KB).
ITEM_SIZE_LIMIT = 405_000
# Below this running size an item is not measured again on each attribute set. An in-place
# change of a nested value (which moto never checks either) could make the running figure
# low; it would have to add more than the gap to the limit, 341 KB, to let an oversize item in.
ITEM_RECOUNT_ABOVE = 64_000


def _value_size(value: Any) -> int:
    return value.size() if type(value) is DynamoType else bytesize(str(value))


def _measured(attrs: dict[str, Any]) -> int:
    """What moto's check adds up: every key's and every value's size."""
    return sum(_value_size(part) for part in (*attrs.keys(), *attrs.values()))


def _limited_setitem(self: LimitedSizeDict, key: str, value: Any) -> None:
    new_size = bytesize(key) + _value_size(value)
    known: int | None = self.__dict__.get("_aftercare_size")
    if known is None or known + new_size > ITEM_RECOUNT_ABOVE:
        known = _measured(self)
    if known + new_size > ITEM_SIZE_LIMIT:
        raise moto_dynamo_type.ItemSizeTooLarge
    dict.__setitem__(self, key, value)
    # A replaced value stays counted (as in moto's check): the figure only ever over-states,
    # which brings the next exact measurement sooner, never later.
    self.__dict__["_aftercare_size"] = known + new_size


EXPRESSION_CACHE_SIZE = 2048


@functools.lru_cache(maxsize=EXPRESSION_CACHE_SIZE)
def _parsed_update_expression(expression: str) -> Any:
    return _ORIGINAL_UPDATE_MAKE(expression)


def _update_expression_make(cls: type, expression_str: str) -> Any:
    return _parsed_update_expression(expression_str)


@functools.lru_cache(maxsize=EXPRESSION_CACHE_SIZE)
def _condition_tokens(expression: str) -> tuple[tuple[Any, Any, str, Any], ...]:
    parser = ConditionExpressionParser(expression, None, None)
    return tuple(
        (node.nonterminal, node.kind, node.text, node.value)
        for node in _ORIGINAL_CONDITION_LEX(parser)
    )


def _lex_condition_expression(self: ConditionExpressionParser) -> Any:
    tokens = _condition_tokens(self.condition_expression)
    return deque(
        self.Node(nonterminal=nonterminal, kind=kind, text=text, value=value, children=[])
        for nonterminal, kind, text, value in tokens
    )


_snake_case = functools.lru_cache(maxsize=4096)(moto_utils.camelcase_to_underscores)

_ORIGINAL_HEADERS_ITER = EnvironHeaders.__iter__
_ORIGINAL_LIST_OF_MOTO_MODULES = backends.list_of_moto_modules
_ORIGINAL_METHOD_NAMES = moto_responses.method_names_from_class
_ORIGINAL_UNIX_TIME = sqs_models.unix_time
_ORIGINAL_QUEUE_ATTRIBUTES = Queue.attributes
_ORIGINAL_TRAVERSE = DepthFirstTraverser.traverse
_ORIGINAL_UPDATE_MAKE = UpdateExpressionParser.make
_ORIGINAL_CONDITION_LEX = ConditionExpressionParser._lex_condition_expression


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
    if not getattr(DynamoHandler.parse_parameters, "_aftercare_fast", False):
        fast_parse = _fast_dynamodb_parse(DynamoHandler.parse_parameters)
        fast_parse._aftercare_fast = True  # type: ignore[attr-defined]
        DynamoHandler.parse_parameters = fast_parse  # type: ignore[method-assign]
    backends.list_of_moto_modules = _cached_moto_modules
    moto_responses.method_names_from_class = _cached_method_names
    sqs_models.unix_time = _unix_time
    sqs_models.unix_time_millis = _unix_time_millis
    SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]
    EnvironHeaders.__iter__ = _environ_headers_iter  # type: ignore[method-assign]
    aws_headers.gen_amzn_requestid_long = _request_id
    moto_responses.gen_amzn_requestid_long = _request_id
    moto_responses.camelcase_to_underscores = _snake_case
    UpdateExpressionParser.make = classmethod(_update_expression_make)
    ConditionExpressionParser._lex_condition_expression = _lex_condition_expression  # type: ignore[method-assign]
    LimitedSizeDict.__setitem__ = _limited_setitem  # type: ignore[method-assign]
    streams_models.os = _ITERATOR_ID_SOURCE  # type: ignore[assignment]
    Queue.attributes = property(_queue_attributes)  # type: ignore[assignment,method-assign]
    DepthFirstTraverser.traverse = _traverse


# What each replacement stands in for (tests/unit/test_moto_pins.py checks moto's signatures).
_retained.__wrapped__ = SQSBackend.is_message_valid_based_on_retention_period  # type: ignore[attr-defined]
_unix_time.__wrapped__ = sqs_models.unix_time  # type: ignore[attr-defined]
_unix_time_millis.__wrapped__ = sqs_models.unix_time_millis  # type: ignore[attr-defined]
_cached_moto_modules.__wrapped__ = backends.list_of_moto_modules  # type: ignore[attr-defined]
_cached_method_names.__wrapped__ = moto_responses.method_names_from_class  # type: ignore[attr-defined]
_environ_headers_iter.__wrapped__ = EnvironHeaders.__iter__  # type: ignore[attr-defined]
_limited_setitem.__wrapped__ = LimitedSizeDict.__setitem__  # type: ignore[attr-defined]
_request_id.__wrapped__ = aws_headers.gen_amzn_requestid_long  # type: ignore[attr-defined]
_queue_attributes.__wrapped__ = _ORIGINAL_QUEUE_ATTRIBUTES.fget  # type: ignore[attr-defined]
_traverse.__wrapped__ = DepthFirstTraverser.traverse  # type: ignore[attr-defined]
