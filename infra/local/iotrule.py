"""Local stand-in for the AWS IoT rules engine: an IoT SQL subset and an MQTT -> SQS/Lambda bridge.

moto stores topic rules but never runs them, so the local stack runs this bridge instead. It
subscribes to Mosquitto with a persistent MQTT v5 session, evaluates every rule whose topic
filter matches a message and runs the rule's actions (SQS SendMessage against moto, or an HTTP
POST to a local Lambda worker). A message is acknowledged only once each matching rule has
either delivered it or parked it through the rule's error action, so nothing accepted is lost.
When the error action fails too, the message is retried a bounded number of times (at once, for
a permanent failure such as a document over SQS's 1 MiB) and then parked directly in the
ParkedTable (source ``iot-rules``, bounded item): one poison message never stalls the stream.

SQL subset (keywords and function names are case-insensitive)::

    SELECT <item>[, <item>...] FROM '<topic filter>' [WHERE <cond> [AND <cond>...]]
    item: *  |  encode(*, 'base64') AS n  |  topic() AS n  |  topic(k) AS n
          |  timestamp() AS n  |  newuuid() AS n
    cond: topic(k) | topic() | <payload.field>  (= | <>)  'string' | number

Anything else raises `UnsupportedRuleSql` naming the construct. ``clientid()`` is rejected on
purpose: an MQTT subscriber never learns the publisher's client id.

Process: ``python -m infra.local.iotrule --spec-file PATH`` (see `BridgeSpec`); prints ``READY``
on stdout once connected and subscribed; SIGTERM/SIGINT disconnect cleanly and exit 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import queue
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from functools import cached_property
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit

import boto3
from aftercare.adapters.parked import MAX_EXCERPT_BYTES, DynamoParkedStore
from aftercare.domain.ports import ParkedMessage
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger("infra.local.iotrule")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
class UnsupportedRuleSql(ValueError):
    """The rule SQL uses something this emulation cannot run (or is malformed); says what."""


class RuleEvaluationError(Exception):
    """Evaluating a rule on one message failed; AWS would run the rule's error action."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Evaluation model
# ---------------------------------------------------------------------------------------------
class _Undefined:
    """AWS IoT SQL's ``Undefined``: a missing value; keys bound to it are left out."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED = _Undefined()


class _Message:
    """One MQTT message under evaluation; the payload is parsed as JSON at most once."""

    def __init__(self, topic: str, payload: bytes, now_ms: int) -> None:
        self.topic = topic
        self.payload = payload
        self.now_ms = now_ms

    @cached_property
    def document(self) -> object:
        """The payload as JSON, ``{}`` when empty, `UNDEFINED` when it is not JSON."""
        if not self.payload:
            return {}
        try:
            return json.loads(self.payload)
        except ValueError:
            return UNDEFINED


class _Expression(Protocol):
    def evaluate(self, message: _Message) -> object: ...


@dataclass(frozen=True)
class _TopicExpr:
    segment: int | None  # 1-based; None means the whole topic

    def evaluate(self, message: _Message) -> object:
        if self.segment is None:
            return message.topic
        levels = message.topic.split("/")
        return levels[self.segment - 1] if self.segment <= len(levels) else UNDEFINED


@dataclass(frozen=True)
class _Base64PayloadExpr:
    def evaluate(self, message: _Message) -> object:
        return base64.b64encode(message.payload).decode("ascii")


@dataclass(frozen=True)
class _TimestampExpr:
    def evaluate(self, message: _Message) -> object:
        return message.now_ms


@dataclass(frozen=True)
class _NewUuidExpr:
    def evaluate(self, message: _Message) -> object:
        return str(uuid.uuid4())


@dataclass(frozen=True)
class _FieldExpr:
    path: tuple[str, ...]

    def evaluate(self, message: _Message) -> object:
        value = message.document
        for key in self.path:
            if not isinstance(value, dict) or key not in value:
                return UNDEFINED
            value = value[key]
        return value


class _SelectItem(Protocol):
    def contribute(self, message: _Message, output: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class _StarItem:
    def contribute(self, message: _Message, output: dict[str, Any]) -> None:
        document = message.document
        if document is UNDEFINED:
            raise RuleEvaluationError(
                "SELECT * needs a JSON payload but the payload is not valid JSON "
                "(select encode(*, 'base64') to carry binary payloads)"
            )
        if not isinstance(document, dict):
            raise RuleEvaluationError(
                f"SELECT * merges the payload into the output object, but the payload is a "
                f"JSON {type(document).__name__}, not an object"
            )
        output.update(document)


@dataclass(frozen=True)
class _NamedItem:
    alias: str
    expression: _Expression

    def contribute(self, message: _Message, output: dict[str, Any]) -> None:
        value = self.expression.evaluate(message)
        if value is not UNDEFINED:
            output[self.alias] = value


SqlLiteral = str | int | float


def _sql_equal(value: object, literal: SqlLiteral) -> bool:
    if isinstance(literal, str):
        return isinstance(value, str) and value == literal
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return is_number and value == literal


@dataclass(frozen=True)
class _Comparison:
    left: _Expression
    negated: bool  # True for <>
    literal: SqlLiteral

    def holds(self, message: _Message) -> bool:
        value = self.left.evaluate(message)
        if value is UNDEFINED:  # Undefined compares to nothing: the condition is not true
            return False
        return _sql_equal(value, self.literal) != self.negated


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest, including the parent)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False  # MQTT: wildcards at the first level never match $-topics
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(frozen=True)
class ParsedRule:
    """A rule's SQL, parsed: what it listens to, what it filters on and what it outputs."""

    sql: str
    topic_filter: str
    items: tuple[_SelectItem, ...]
    conditions: tuple[_Comparison, ...]

    def matches(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)

    def evaluate(self, topic: str, payload: bytes, now_ms: int) -> dict[str, Any] | None:
        """The rule's output for a message on a matching topic; None when WHERE is not true.

        WHERE is evaluated first (as in AWS), so a filtered-out message never fails SELECT.
        Raises `RuleEvaluationError` when SELECT cannot be computed (``*`` on a non-JSON payload).
        """
        message = _Message(topic, payload, now_ms)
        if not all(condition.holds(message) for condition in self.conditions):
            return None
        output: dict[str, Any] = {}
        for item in self.items:
            item.contribute(message, output)
        return output


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------
class _Kind(Enum):
    WORD = "word"
    STRING = "string"
    NUMBER = "number"
    SYMBOL = "symbol"
    END = "end"


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str
    position: int

    def is_word(self, *words: str) -> bool:
        return self.kind is _Kind.WORD and self.text.upper() in words

    def is_symbol(self, *symbols: str) -> bool:
        return self.kind is _Kind.SYMBOL and self.text in symbols

    def describe(self) -> str:
        if self.kind is _Kind.END:
            return "end of SQL"
        return self.text if self.kind is _Kind.STRING else f"'{self.text}'"


_TOKEN_PATTERN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<string>'[^']*')
    | (?P<symbol><>|!=|<=|>=|\|\||[(),.*=<>+\-/%])
    """,
    re.VERBOSE,
)

_BAD_CHARACTERS = {
    "'": "unterminated string literal",
    '"': "double-quoted names and strings are not supported; quote literals with '...'",
    "[": "array indexing ([...]) is not supported",
    "{": "object literals ({...}) are not supported",
    "$": "substitution templates (${...}) are not supported",
    "@": "variables (@name) are not supported",
}


def _tokenize(sql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(sql):
        match = _TOKEN_PATTERN.match(sql, position)
        if match is None:
            character = sql[position]
            reason = _BAD_CHARACTERS.get(character, f"character {character!r} is not supported")
            raise UnsupportedRuleSql(f"{reason} (at position {position})")
        kind = match.lastgroup
        if kind is not None and kind != "space":
            tokens.append(_Token(_Kind(kind), match.group(), position))
        position = match.end()
    tokens.append(_Token(_Kind.END, "", len(sql)))
    return tokens


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------
_KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT"})

_UNSUPPORTED_WORDS = {
    "SET": "the SET clause (variables) is not supported",
    "VALUE": "SELECT VALUE is not supported",
    "CASE": "CASE expressions are not supported",
    "GROUP": "clause GROUP BY is not supported",
    "ORDER": "clause ORDER BY is not supported",
    "HAVING": "clause HAVING is not supported",
    "LIMIT": "clause LIMIT is not supported",
    "JOIN": "clause JOIN is not supported",
    "UNION": "clause UNION is not supported",
    "OR": "operator OR is not supported (only AND may combine conditions)",
    "NOT": "operator NOT is not supported (use <>)",
    "IN": "operator IN is not supported (only = and <>)",
    "LIKE": "operator LIKE is not supported (only = and <>)",
    "IS": "operator IS is not supported (only = and <>)",
    "BETWEEN": "operator BETWEEN is not supported (only = and <>)",
    "TRUE": "boolean literal TRUE is not supported (compare with a 'string' or a number)",
    "FALSE": "boolean literal FALSE is not supported (compare with a 'string' or a number)",
    "NULL": "NULL is not supported (compare with a 'string' or a number)",
}

_RESERVED_WORDS = _KEYWORDS | frozenset(_UNSUPPORTED_WORDS)

_OPERATOR_SYMBOLS = frozenset({"+", "-", "*", "/", "%", "||", "<", ">", "<=", ">=", "!="})

_SUPPORTED_FUNCTIONS = "encode(*, 'base64'), newuuid(), timestamp(), topic(), topic(n)"


def _unexpected(token: _Token, expected: str) -> UnsupportedRuleSql:
    upper = token.text.upper()
    if token.kind is _Kind.WORD and upper in _UNSUPPORTED_WORDS:
        reason = _UNSUPPORTED_WORDS[upper]
    elif token.kind is _Kind.SYMBOL and token.text in _OPERATOR_SYMBOLS:
        reason = f"operator '{token.text}' is not supported"
    else:
        reason = f"expected {expected}, found {token.describe()}"
    return UnsupportedRuleSql(f"{reason} (at position {token.position})")


class _Parser:
    def __init__(self, sql: str) -> None:
        if re.match(r"\s*SET\b", sql, re.IGNORECASE):  # before tokenizing its @variables
            raise UnsupportedRuleSql(f"{_UNSUPPORTED_WORDS['SET']} (at position 0)")
        self._sql = sql
        self._tokens = _tokenize(sql)
        self._index = 0

    # -- token helpers ---------------------------------------------------------------------
    def _peek(self, offset: int = 0) -> _Token:
        return self._tokens[min(self._index + offset, len(self._tokens) - 1)]

    def _next(self) -> _Token:
        token = self._peek()
        self._index = min(self._index + 1, len(self._tokens) - 1)
        return token

    def _expect_symbol(self, symbol: str, expected: str) -> None:
        token = self._next()
        if not token.is_symbol(symbol):
            raise _unexpected(token, expected)

    def _expect_word(self, word: str, expected: str) -> None:
        token = self._next()
        if not token.is_word(word):
            raise _unexpected(token, expected)

    def _at_call(self) -> bool:
        return self._peek().kind is _Kind.WORD and self._peek(1).is_symbol("(")

    # -- statement -------------------------------------------------------------------------
    def parse(self) -> ParsedRule:
        self._reject_subqueries()
        self._expect_word("SELECT", "SELECT at the start of the rule")
        items = self._select_list()
        self._expect_word("FROM", "',' or FROM after a select item")
        topic_filter = self._topic_filter()
        conditions = self._where() if self._peek().is_word("WHERE") else ()
        token = self._peek()
        if token.kind is not _Kind.END:
            raise _unexpected(token, "WHERE, AND or the end of the SQL")
        return ParsedRule(self._sql, topic_filter, items, conditions)

    def _reject_subqueries(self) -> None:
        selects = [token for token in self._tokens if token.is_word("SELECT")]
        if len(selects) > 1:
            raise UnsupportedRuleSql(
                f"nested SELECT (subquery) is not supported (at position {selects[1].position})"
            )

    # -- SELECT ----------------------------------------------------------------------------
    def _select_list(self) -> tuple[_SelectItem, ...]:
        items = [self._select_item()]
        while self._peek().is_symbol(","):
            self._next()
            items.append(self._select_item())
        stars = [item for item in items if isinstance(item, _StarItem)]
        if len(stars) > 1:
            raise UnsupportedRuleSql("* may appear only once in SELECT")
        return tuple(items)

    def _select_item(self) -> _SelectItem:
        token = self._peek()
        if token.is_symbol("*"):
            self._next()
            return _StarItem()
        if self._at_call():
            start = token.position
            expression = self._function_call()
            return _NamedItem(
                self._alias(self._sql[start : self._peek().position].strip()), expression
            )
        if token.kind is _Kind.WORD and token.text.upper() not in _RESERVED_WORDS:
            raise UnsupportedRuleSql(
                f"selecting payload fields ({token.text}) is not supported; select * or one "
                f"of {_SUPPORTED_FUNCTIONS} AS a name (at position {token.position})"
            )
        if token.kind in (_Kind.STRING, _Kind.NUMBER):
            raise UnsupportedRuleSql(
                f"literal values in SELECT are not supported (at position {token.position})"
            )
        raise _unexpected(token, "a select item")

    def _alias(self, expression_text: str) -> str:
        token = self._peek()
        if not token.is_word("AS"):
            if token.kind is _Kind.END or token.is_symbol(",") or token.is_word("FROM"):
                raise UnsupportedRuleSql(
                    f"{expression_text} needs a name: write {expression_text} AS name "
                    f"(at position {token.position})"
                )
            raise _unexpected(token, f"AS after {expression_text}")
        self._next()
        name = self._next()
        if name.kind is not _Kind.WORD or name.text.upper() in _KEYWORDS:
            raise _unexpected(name, "a name after AS")
        return name.text

    # -- functions -------------------------------------------------------------------------
    def _function_call(self) -> _Expression:
        name = self._next()
        self._next()  # "("
        function = name.text.lower()
        if function == "clientid":
            raise UnsupportedRuleSql(
                "clientid() cannot be emulated: MQTT subscribers do not learn the publisher's "
                f"client id (at position {name.position})"
            )
        argument_parsers: dict[str, Callable[[str], _Expression]] = {
            "topic": self._topic_arguments,
            "encode": self._encode_arguments,
            "timestamp": lambda text: self._no_arguments(text, _TimestampExpr()),
            "newuuid": lambda text: self._no_arguments(text, _NewUuidExpr()),
        }
        if function not in argument_parsers:
            raise UnsupportedRuleSql(
                f"function {name.text}() is not supported; supported functions: "
                f"{_SUPPORTED_FUNCTIONS} (at position {name.position})"
            )
        expression = argument_parsers[function](name.text)
        self._expect_symbol(")", f"')' to close {name.text}(")
        return expression

    def _no_arguments(self, name: str, expression: _Expression) -> _Expression:
        token = self._peek()
        if not token.is_symbol(")"):
            raise UnsupportedRuleSql(f"{name}() takes no arguments (at position {token.position})")
        return expression

    def _topic_arguments(self, name: str) -> _Expression:
        token = self._peek()
        if token.is_symbol(")"):
            return _TopicExpr(None)
        self._next()
        if token.kind is _Kind.NUMBER and token.text.isdigit() and int(token.text) > 0:
            return _TopicExpr(int(token.text))
        raise UnsupportedRuleSql(
            f"{name}() takes no argument or a positive segment number, found "
            f"{token.describe()} (at position {token.position})"
        )

    def _encode_arguments(self, name: str) -> _Expression:
        token = self._next()
        if not token.is_symbol("*"):
            raise UnsupportedRuleSql(
                f"{name}() is supported only on * (the whole payload), found "
                f"{token.describe()} (at position {token.position})"
            )
        self._expect_symbol(",", f"',' after {name}(*")
        encoding = self._next()
        if encoding.kind is not _Kind.STRING or encoding.text[1:-1].lower() != "base64":
            raise UnsupportedRuleSql(
                f"{name}(*, ...) supports only the 'base64' encoding, found "
                f"{encoding.describe()} (at position {encoding.position})"
            )
        return _Base64PayloadExpr()

    # -- FROM ------------------------------------------------------------------------------
    def _topic_filter(self) -> str:
        token = self._next()
        if token.kind is not _Kind.STRING:
            raise _unexpected(token, "a quoted topic filter after FROM, like 'dt/+/fault'")
        topic_filter = token.text[1:-1]
        problem = _topic_filter_problem(topic_filter)
        if problem:
            raise UnsupportedRuleSql(
                f"invalid topic filter {topic_filter!r}: {problem} (at position {token.position})"
            )
        return topic_filter

    # -- WHERE -----------------------------------------------------------------------------
    def _where(self) -> tuple[_Comparison, ...]:
        self._next()  # WHERE
        conditions = [self._comparison()]
        while self._peek().is_word("AND"):
            self._next()
            conditions.append(self._comparison())
        return tuple(conditions)

    def _comparison(self) -> _Comparison:
        left = self._comparison_subject()
        operator = self._next()
        if not operator.is_symbol("=", "<>"):
            raise _unexpected(operator, "= or <>")
        return _Comparison(left, operator.text == "<>", self._literal())

    def _comparison_subject(self) -> _Expression:
        token = self._peek()
        if self._at_call():
            expression = self._function_call()
            if not isinstance(expression, _TopicExpr):
                raise UnsupportedRuleSql(
                    f"only topic(), topic(n) and payload fields can be compared in WHERE, not "
                    f"{token.text}() (at position {token.position})"
                )
            return expression
        if token.is_symbol("("):
            raise UnsupportedRuleSql(
                f"parenthesised conditions are not supported (at position {token.position})"
            )
        if token.kind is _Kind.WORD and token.text.upper() not in _UNSUPPORTED_WORDS:
            return self._field_path()
        raise _unexpected(token, "topic(n) or a payload field")

    def _field_path(self) -> _FieldExpr:
        path = [self._field_name()]
        while self._peek().is_symbol("."):
            self._next()
            path.append(self._field_name())
        return _FieldExpr(tuple(path))

    def _field_name(self) -> str:
        token = self._next()
        if token.kind is not _Kind.WORD or token.text.upper() in _KEYWORDS:
            raise _unexpected(token, "a payload field name")
        return token.text

    def _literal(self) -> SqlLiteral:
        token = self._next()
        if token.kind is _Kind.STRING:
            return token.text[1:-1]
        sign = 1
        if token.is_symbol("-"):
            sign, token = -1, self._next()
        if token.kind is _Kind.NUMBER:
            number = float(token.text) if re.search("[.eE]", token.text) else int(token.text)
            return sign * number
        if token.kind is _Kind.WORD and self._peek().is_symbol("("):
            raise UnsupportedRuleSql(
                "the right side of a comparison must be a 'string' or number literal, not "
                f"{token.text}() (at position {token.position})"
            )
        raise _unexpected(token, "a 'string' or number literal")


def _topic_filter_problem(topic_filter: str) -> str | None:
    if not topic_filter:
        return "it is empty"
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if level == "#" and index != len(levels) - 1:
            return "'#' must be the last level"
        if level not in ("+", "#") and ("+" in level or "#" in level):
            return "wildcards must occupy a whole level"
    return None


def parse_sql(sql: str) -> ParsedRule:
    """Parse a rule's SQL; raise `UnsupportedRuleSql` naming anything outside the subset."""
    return _Parser(sql).parse()


# ---------------------------------------------------------------------------------------------
# Bridge spec
# ---------------------------------------------------------------------------------------------
class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqsActionSpec(_SpecModel):
    type: Literal["sqs"]
    queue_url: Annotated[str, StringConstraints(min_length=1)]
    use_base64: bool = False


class LambdaActionSpec(_SpecModel):
    type: Literal["lambda"]
    invoke_url: Annotated[str, StringConstraints(pattern=r"^http://[^/]+/")]
    function_arn: str | None = Field(
        default=None, description="Reported as failedResource; the invoke URL when absent"
    )


ActionSpec = Annotated[SqsActionSpec | LambdaActionSpec, Field(discriminator="type")]


class RuleSpec(_SpecModel):
    name: Annotated[str, StringConstraints(min_length=1)]
    sql: str
    actions: list[ActionSpec]
    error_action: ActionSpec | None = None


class TlsSpec(_SpecModel):
    """The bridge's client certificate for the local broker (see infra.local.broker_auth)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


class BridgeSpec(_SpecModel):
    """The spec file the orchestrator writes for the bridge process."""

    mqtt_url: Annotated[str, StringConstraints(pattern=r"^mqtts?://")]
    tls: TlsSpec | None = None
    aws_endpoint_url: str
    region: str
    client_id: Annotated[str, StringConstraints(min_length=1)]
    rules: Annotated[list[RuleSpec], Field(min_length=1)]
    parked_table: str | None = Field(
        default=None,
        description="The ParkedTable: where a message goes when its rule and error action fail",
    )
    parked_bucket: str | None = Field(
        default=None, description="The ParkedPayloadBucket: envelopes too big for an item"
    )


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------
LAMBDA_ACTION_TIMEOUT_S = 10.0


SQS_MAX_MESSAGE_BYTES = 1024 * 1024  # SendMessage refuses a bigger body
_TRANSIENT_ERROR_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestThrottled", "ServiceUnavailable"}
)


class ActionFailed(Exception):
    """A rule action could not deliver its document; the message says why.

    `permanent` means sending the same document again cannot succeed (it is too big, or the
    service refused it as invalid); otherwise the failure is the service's (unreachable,
    throttled, 5xx) and worth retrying."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Action(Protocol):
    kind: ClassVar[str]

    @property
    def resource(self) -> str: ...

    def run(self, document: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class SqsAction:
    """AWS IoT's SQS action: the rule output (JSON, optionally base64) as one SQS message."""

    kind: ClassVar[str] = "SqsAction"
    client: SQSClient
    queue_url: str
    use_base64: bool

    @property
    def resource(self) -> str:
        return self.queue_url

    def run(self, document: dict[str, Any]) -> None:
        body = json.dumps(document)
        if self.use_base64:
            body = base64.b64encode(body.encode()).decode("ascii")
        size = len(body.encode())
        if size > SQS_MAX_MESSAGE_BYTES:
            raise ActionFailed(
                f"Failed to send message to SQS queue {self.queue_url}: the message is {size} "
                f"bytes, over SQS's {SQS_MAX_MESSAGE_BYTES}",
                permanent=True,
            )
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (BotoCoreError, ClientError) as exc:
            raise ActionFailed(
                f"Failed to send message to SQS queue {self.queue_url}. The error received was "
                f"{exc}",
                permanent=_refused(exc),
            ) from exc


def _refused(exc: BotoCoreError | ClientError) -> bool:
    """The service answered and refused this request: sending it again cannot help."""
    if not isinstance(exc, ClientError):
        return False  # no answer (unreachable, timed out): the service's problem
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return status < 500 and code not in _TRANSIENT_ERROR_CODES


@dataclass(frozen=True)
class LambdaAction:
    """AWS IoT's Lambda action: an asynchronous invoke (``X-Amz-Invocation-Type: Event``).

    As in AWS, only a failure to hand the event over fails the action; the function's own
    outcome is the worker's business.
    """

    kind: ClassVar[str] = "LambdaAction"
    invoke_url: str
    function_arn: str | None = None

    @property
    def resource(self) -> str:
        return self.function_arn or self.invoke_url

    def run(self, document: dict[str, Any]) -> None:
        parts = urlsplit(self.invoke_url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection = HTTPConnection(parts.netloc, timeout=LAMBDA_ACTION_TIMEOUT_S)
        try:
            connection.request(
                "POST",
                path,
                body=json.dumps(document).encode(),
                headers={"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"},
            )
            response = connection.getresponse()
            response.read()
        except (OSError, HTTPException) as exc:
            raise ActionFailed(f"Failed to invoke {self.resource}: {exc}") from exc
        finally:
            connection.close()
        if response.status >= 300:
            raise ActionFailed(
                f"Failed to invoke {self.resource}: HTTP {response.status}",
                permanent=400 <= response.status < 500 and response.status != 429,
            )


def build_action(spec: SqsActionSpec | LambdaActionSpec, sqs: SQSClient) -> Action:
    if isinstance(spec, SqsActionSpec):
        return SqsAction(sqs, spec.queue_url, spec.use_base64)
    return LambdaAction(spec.invoke_url, spec.function_arn)


# ---------------------------------------------------------------------------------------------
# Rule engine (no MQTT here: topic + payload in, actions out)
# ---------------------------------------------------------------------------------------------
class Outcome(StrEnum):
    DELIVERED = "delivered"  # every action succeeded
    FILTERED = "filtered"  # WHERE was not true
    PARKED = "parked"  # something failed; the error action recorded it
    DROPPED = "dropped"  # something failed and the rule has no error action (as in AWS)


class ParkingFailed(Exception):
    """A rule failed and its error action failed too: the message is not settled yet.

    The bridge retries (`permanent` is False: the error action's service was unavailable) or
    parks the message itself through the ParkedTable (see `DirectParking`)."""

    def __init__(self, message: str, *, failures: Sequence[_Failure], permanent: bool) -> None:
        super().__init__(message)
        self.failures = tuple(failures)
        self.permanent = permanent


@dataclass(frozen=True)
class Rule:
    name: str
    parsed: ParsedRule
    actions: tuple[Action, ...]
    error_action: Action | None


@dataclass(frozen=True)
class _Failure:
    action: str
    resource: str
    message: str
    permanent: bool = False  # the same message can never get past this (not part of AWS's doc)

    def to_json(self) -> dict[str, str]:
        return {
            "failedAction": self.action,
            "failedResource": self.resource,
            "errorMessage": self.message,
        }


def error_action_message(
    rule_name: str, topic: str, payload: bytes, failures: Sequence[_Failure]
) -> dict[str, Any]:
    """The document AWS IoT hands to a rule's error action."""
    return {
        "ruleName": rule_name,
        "topic": topic,
        "cloudwatchTraceId": str(uuid.uuid4()),
        "clientId": "",  # not known to an MQTT subscriber (see clientid())
        "base64OriginalPayload": base64.b64encode(payload).decode("ascii"),
        "failures": [failure.to_json() for failure in failures],
    }


def apply_rule(rule: Rule, topic: str, payload: bytes, now_ms: int) -> Outcome:
    """Evaluate one rule on one message and run its actions (or its error action).

    Raises `ParkingFailed` when the rule failed and its error action failed as well.
    """
    try:
        output = rule.parsed.evaluate(topic, payload, now_ms)
    except RuleEvaluationError as exc:
        failures = [_Failure("RuleEvaluation", rule.name, exc.reason, permanent=True)]
    else:
        if output is None:
            return Outcome.FILTERED
        failures = _run_actions(rule.actions, output)
    if not failures:
        return Outcome.DELIVERED
    for failure in failures:
        logger.warning(
            "rule %s on %s: %s failed: %s", rule.name, topic, failure.action, failure.message
        )
    if rule.error_action is None:
        logger.error("rule %s has no error action; message on %s dropped", rule.name, topic)
        return Outcome.DROPPED
    try:
        rule.error_action.run(error_action_message(rule.name, topic, payload, failures))
    except ActionFailed as exc:
        raise ParkingFailed(
            f"error action of rule {rule.name} failed: {exc}",
            failures=[
                *failures,
                _Failure(
                    f"ErrorAction:{rule.error_action.kind}", rule.error_action.resource, str(exc)
                ),
            ],
            permanent=exc.permanent,
        ) from exc
    return Outcome.PARKED


def _run_actions(actions: Iterable[Action], output: dict[str, Any]) -> list[_Failure]:
    failures = []
    for action in actions:
        try:
            action.run(output)
        except ActionFailed as exc:
            failures.append(_Failure(action.kind, action.resource, str(exc), exc.permanent))
    return failures


def build_rules(spec: BridgeSpec, sqs: SQSClient) -> list[Rule]:
    """Parse every rule (raises `UnsupportedRuleSql` naming the rule) and bind its actions."""
    rules = []
    for rule in spec.rules:
        try:
            parsed = parse_sql(rule.sql)
        except UnsupportedRuleSql as exc:
            raise UnsupportedRuleSql(f"rule {rule.name}: {exc}") from exc
        actions = tuple(build_action(action, sqs) for action in rule.actions)
        error_action = build_action(rule.error_action, sqs) if rule.error_action else None
        rules.append(Rule(rule.name, parsed, actions, error_action))
    return rules


# ---------------------------------------------------------------------------------------------
# Direct parking: the last resort when a rule and its error action both fail
# ---------------------------------------------------------------------------------------------
DIRECT_PARK_SOURCE = "iot-rules"


class ParkingUnavailable(Exception):
    """The ParkedTable could not be written either (AWS unreachable): retry later."""


class DirectParking:
    """Parks a message in the ParkedTable through the shared parking adapter, whose items are
    bounded (excerpt + SHA-256 + size), so a message of any size can be parked."""

    def __init__(self, table: str, ddb: Any, bucket: str | None = None, s3: Any = None) -> None:
        self._store = DynamoParkedStore(table=table, ddb=ddb, bucket=bucket, s3=s3)

    def park(self, rule: Rule, inbound: Inbound, failed: ParkingFailed) -> str:
        """Park `inbound`; returns the reason it was parked with."""
        # The rule's own failures decide: a replay may deliver what failed for a while.
        own = [f for f in failed.failures if not f.action.startswith("ErrorAction:")]
        action = own[0].action if own else "unknown"
        kind = "undeliverable" if own and all(f.permanent for f in own) else "rule_error"
        reason = f"{kind}:{action}"
        parts = inbound.topic.split("/")
        message = ParkedMessage(
            source=DIRECT_PARK_SOURCE,
            reason=reason,
            detail=f"rule {rule.name}: " + "; ".join(f.message for f in failed.failures),
            received_at=datetime.fromtimestamp(inbound.received_ms / 1000, tz=UTC),
            payload=inbound.payload[:MAX_EXCERPT_BYTES].decode("utf-8", errors="replace"),
            thing=parts[2] if len(parts) > 3 else None,
            envelope=error_action_message(
                rule.name, inbound.topic, inbound.payload, failed.failures
            ),
            message_id=str(uuid.uuid4()),
        )
        try:
            self._store.park(message)
        except (BotoCoreError, ClientError) as exc:
            raise ParkingUnavailable(f"cannot park in {self._store.table}: {exc}") from exc
        return reason


# ---------------------------------------------------------------------------------------------
# MQTT bridge
# ---------------------------------------------------------------------------------------------
SESSION_EXPIRY_S = 7 * 24 * 3600  # queued QoS 1 messages wait this long for a stopped bridge
RECEIVE_MAXIMUM = 64  # unacknowledged messages the broker may have in flight to us
KEEPALIVE_S = 30
RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
# A rule whose error action keeps failing is tried this often (0.5 + 1 + 2 + 4 s of backoff)
# before the bridge parks the message itself; a permanent failure is parked at once.
RULE_ATTEMPTS = 5
HEALTH_CHECK_INTERVAL_S = 1.0
STATS_INTERVAL_S = 30.0
SHUTDOWN_GRACE_S = 15.0


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes
    qos: int
    mid: int
    generation: int  # which connection delivered it; acks are only valid on that connection
    received_ms: int


class _Abandoned(Exception):
    """Stopping while a message could not be settled: leave it unacknowledged."""


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(
            ["received", "unmatched", "retries", *(o.value for o in Outcome)], 0
        )

    def add(self, name: str) -> None:
        with self._lock:
            self._values[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class Bridge:
    """Mosquitto -> rules -> actions, with acknowledgements only after settlement."""

    def __init__(
        self,
        spec: BridgeSpec,
        rules: Sequence[Rule],
        stop: threading.Event,
        parking: DirectParking | None = None,
    ) -> None:
        self._spec = spec
        self._parking = parking
        self._rules = tuple(rules)
        self._filters = list(dict.fromkeys(rule.parsed.topic_filter for rule in rules))
        self._stop = stop
        self._inbox: queue.Queue[Inbound | None] = queue.Queue()
        self._connection_lock = threading.Lock()
        self._generation = 0
        self._subscription_mid: int | None = None
        self._broker_unreachable = False
        self._ready = threading.Event()
        self.fatal: str | None = None
        self.counters = _Counters()
        self._worker = threading.Thread(target=self._work, name="rule-actions", daemon=True)
        self._client = self._build_client()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        parts = urlsplit(self._spec.mqtt_url)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._worker.start()
        self._client.connect_async(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            keepalive=KEEPALIVE_S,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def wait_ready(self) -> bool:
        """Block until subscribed; False when stopping or a fatal error came first."""
        while not self._ready.wait(0.2):
            if self._stop.is_set() or self.fatal:
                return False
        return True

    @property
    def healthy(self) -> bool:
        return self.fatal is None and self._worker.is_alive()

    def close(self) -> None:
        """Finish the message in hand, leave queued ones unacknowledged, disconnect."""
        self._stop.set()
        self._inbox.put(None)
        self._worker.join(SHUTDOWN_GRACE_S)
        self._client.disconnect()
        self._client.loop_stop()

    # -- MQTT callbacks (paho's network thread) ---------------------------------------------
    def _build_client(self) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._spec.client_id,
            protocol=MQTTv5,
            manual_ack=True,
        )
        parts = urlsplit(self._spec.mqtt_url)
        if parts.username:
            client.username_pw_set(parts.username, parts.password)
        if parts.scheme == "mqtts":
            tls = self._spec.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls else None,
                certfile=str(tls.cert_file) if tls else None,
                keyfile=str(tls.key_file) if tls else None,
            )
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: Client,
        userdata: object,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.error("broker refused the connection: %s", reason_code)
            return
        with self._connection_lock:
            self._generation += 1
        self._broker_unreachable = False
        logger.info("connected (session present: %s); subscribing", flags.session_present)
        _, self._subscription_mid = client.subscribe(
            [(topic_filter, SubscribeOptions(qos=1)) for topic_filter in self._filters]
        )

    def _on_connect_fail(self, client: Client, userdata: object) -> None:
        if not self._broker_unreachable:
            logger.warning("cannot reach the broker at %s; retrying", self._spec.mqtt_url)
        self._broker_unreachable = True

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._connection_lock:
            self._generation += 1  # unacknowledged messages will be redelivered
        if not self._stop.is_set():
            logger.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_subscribe(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid != self._subscription_mid:
            return
        refused = [
            f for f, code in zip(self._filters, reason_codes, strict=False) if code.is_failure
        ]
        if refused:
            self.fatal = f"broker refused subscriptions to {refused}"
            logger.error(self.fatal)
            return
        logger.info("subscribed to %s", ", ".join(self._filters))
        self._ready.set()

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        with self._connection_lock:
            generation = self._generation
        self._inbox.put(
            Inbound(
                topic=message.topic,
                payload=bytes(message.payload),
                qos=message.qos,
                mid=message.mid,
                generation=generation,
                received_ms=time.time_ns() // 1_000_000,
            )
        )

    # -- worker thread ---------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            inbound = self._inbox.get()
            if inbound is None or self._stop.is_set():
                return
            try:
                outcomes = self.settle(inbound)
            except _Abandoned:
                logger.info("stopping: %s left unacknowledged for redelivery", inbound.topic)
                return
            self._acknowledge(inbound)
            summary = ", ".join(f"{name}={outcome}" for name, outcome in outcomes) or "no rule"
            logger.info("%s (%d bytes): %s", inbound.topic, len(inbound.payload), summary)

    def settle(self, inbound: Inbound) -> list[tuple[str, Outcome]]:
        """Run every matching rule on one message until each delivered or parked it."""
        self.counters.add("received")
        matching = [rule for rule in self._rules if rule.parsed.matches(inbound.topic)]
        if not matching:
            self.counters.add("unmatched")
        outcomes = []
        for rule in matching:
            outcome = self._apply_until_settled(rule, inbound)
            self.counters.add(outcome)
            outcomes.append((rule.name, outcome))
        return outcomes

    def _apply_until_settled(self, rule: Rule, inbound: Inbound) -> Outcome:
        """Deliver or park; never gives up on a message, never blocks on one for long.

        A failure of the rule's service alone is retried with backoff. After `RULE_ATTEMPTS`
        (at once for a permanent failure, e.g. a document over SQS's limit) the message is
        parked directly; only while the ParkedTable is unreachable too (AWS is down, and no
        later message could be settled either) does the bridge keep waiting."""
        delay = RETRY_MIN_S
        attempts = 0
        while True:
            attempts += 1
            try:
                return apply_rule(rule, inbound.topic, inbound.payload, inbound.received_ms)
            except ParkingFailed as exc:
                if exc.permanent or attempts >= RULE_ATTEMPTS:
                    parked = self._park_directly(rule, inbound, exc)
                    if parked is not None:
                        return parked
                logger.error("%s; retrying in %.1fs", exc, delay)
            self.counters.add("retries")
            if self._stop.wait(delay):
                raise _Abandoned
            delay = min(delay * 2, RETRY_MAX_S)

    def _park_directly(self, rule: Rule, inbound: Inbound, failed: ParkingFailed) -> Outcome | None:
        if self._parking is None:
            logger.error("rule %s: no ParkedTable to park %s in", rule.name, inbound.topic)
            return None
        try:
            reason = self._parking.park(rule, inbound, failed)
        except ParkingUnavailable as exc:
            logger.error("%s", exc)
            return None
        logger.warning(
            "rule %s: %s (%d bytes) parked directly as %s: %s",
            rule.name,
            inbound.topic,
            len(inbound.payload),
            reason,
            failed,
        )
        return Outcome.PARKED

    def _acknowledge(self, inbound: Inbound) -> None:
        if inbound.qos == 0:
            return
        # Under the lock the connection cannot be swapped between the check and the ack; an
        # ack for a message from an earlier connection would hit another message's id.
        with self._connection_lock:
            if inbound.generation == self._generation:
                self._client.ack(inbound.mid, inbound.qos)
                return
        logger.info(
            "connection changed since %s arrived; the broker will redeliver it", inbound.topic
        )


# ---------------------------------------------------------------------------------------------
# Process entrypoint
# ---------------------------------------------------------------------------------------------
EXIT_OK = 0
EXIT_RUNTIME_FAILURE = 1
EXIT_BAD_SPEC = 2


def load_spec(path: Path) -> BridgeSpec:
    return BridgeSpec.model_validate_json(path.read_bytes())


def _sqs_client(spec: BridgeSpec) -> SQSClient:
    return boto3.client(
        "sqs",
        region_name=spec.region,
        endpoint_url=spec.aws_endpoint_url,
        config=Config(
            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10
        ),
    )


def _direct_parking(spec: BridgeSpec) -> DirectParking | None:
    if spec.parked_table is None:
        return None
    config = Config(
        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10
    )
    ddb, s3 = (
        boto3.client(
            service, region_name=spec.region, endpoint_url=spec.aws_endpoint_url, config=config
        )
        for service in ("dynamodb", "s3")
    )
    return DirectParking(spec.parked_table, ddb, spec.parked_bucket, s3)


def _local_aws_environment() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"


def _install_signal_handlers(stop: threading.Event) -> None:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def _serve(bridge: Bridge, stop: threading.Event) -> int:
    if not bridge.wait_ready():
        return EXIT_RUNTIME_FAILURE if bridge.fatal else EXIT_OK
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    last_logged: dict[str, int] = {}
    next_stats = time.monotonic() + STATS_INTERVAL_S
    while not stop.wait(HEALTH_CHECK_INTERVAL_S):
        if not bridge.healthy:
            logger.error("bridge unhealthy (%s); exiting", bridge.fatal or "worker thread died")
            return EXIT_RUNTIME_FAILURE
        if time.monotonic() >= next_stats:
            next_stats += STATS_INTERVAL_S
            last_logged = _log_counters(bridge.counters.snapshot(), last_logged)
    return EXIT_OK


def _log_counters(counts: dict[str, int], last_logged: dict[str, int]) -> dict[str, int]:
    if counts != last_logged:
        logger.info("counters %s", " ".join(f"{name}={value}" for name, value in counts.items()))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local AWS IoT rules engine (MQTT -> SQS/Lambda)")
    parser.add_argument("--spec-file", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s iotrule %(message)s",
    )
    for noisy in ("botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _local_aws_environment()
    try:
        spec = load_spec(args.spec_file)
        rules = build_rules(spec, _sqs_client(spec))
    except (OSError, ValidationError, UnsupportedRuleSql) as exc:
        sys.stderr.write(f"iotrule: cannot start from {args.spec_file}: {exc}\n")
        return EXIT_BAD_SPEC
    stop = threading.Event()
    _install_signal_handlers(stop)
    bridge = Bridge(spec, rules, stop, _direct_parking(spec))
    bridge.start()
    try:
        code = _serve(bridge, stop)
    finally:
        bridge.close()
        _log_counters(bridge.counters.snapshot(), {})
        logger.info("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
