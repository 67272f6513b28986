"""AWS IoT SQL, the subset the local rules engine runs: what a parsed rule is and how it
evaluates one MQTT message (`infra.local.iot_sql_parser` turns SQL text into a `ParsedRule`).

SQL subset (keywords and function names are case-insensitive)::

    SELECT <item>[, <item>...] FROM '<topic filter>' [WHERE <cond> [AND <cond>...]]
    item: *  |  encode(*, 'base64') AS n  |  topic() AS n  |  topic(k) AS n
          |  timestamp() AS n  |  newuuid() AS n
    cond: topic(k) | topic() | <payload.field>  (= | <>)  'string' | number

Anything else raises `UnsupportedRuleSql` naming the construct. ``clientid()`` is rejected on
purpose: an MQTT subscriber never learns the publisher's client id.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from paho.mqtt.client import topic_matches_sub


class UnsupportedRuleSql(ValueError):
    """The rule SQL uses something this emulation cannot run (or is malformed); says what."""


class RuleEvaluationError(Exception):
    """Evaluating a rule on one message failed; AWS would run the rule's error action."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Undefined:
    """AWS IoT SQL's ``Undefined``: a missing value; keys bound to it are left out."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED = _Undefined()


class Message:
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


class Expression(Protocol):
    def evaluate(self, message: Message) -> object: ...


@dataclass(frozen=True)
class TopicExpr:
    segment: int | None  # 1-based; None means the whole topic

    def evaluate(self, message: Message) -> object:
        if self.segment is None:
            return message.topic
        levels = message.topic.split("/")
        return levels[self.segment - 1] if self.segment <= len(levels) else UNDEFINED


@dataclass(frozen=True)
class Base64PayloadExpr:
    def evaluate(self, message: Message) -> object:
        return base64.b64encode(message.payload).decode("ascii")


@dataclass(frozen=True)
class TimestampExpr:
    def evaluate(self, message: Message) -> object:
        return message.now_ms


@dataclass(frozen=True)
class NewUuidExpr:
    def evaluate(self, message: Message) -> object:
        return str(uuid.uuid4())


@dataclass(frozen=True)
class FieldExpr:
    path: tuple[str, ...]

    def evaluate(self, message: Message) -> object:
        value = message.document
        for key in self.path:
            if not isinstance(value, dict) or key not in value:
                return UNDEFINED
            value = value[key]
        return value


class SelectItem(Protocol):
    def contribute(self, message: Message, output: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class StarItem:
    def contribute(self, message: Message, output: dict[str, Any]) -> None:
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
class NamedItem:
    alias: str
    expression: Expression

    def contribute(self, message: Message, output: dict[str, Any]) -> None:
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
class Comparison:
    left: Expression
    negated: bool  # True for <>
    literal: SqlLiteral

    def holds(self, message: Message) -> bool:
        value = self.left.evaluate(message)
        if value is UNDEFINED:  # Undefined compares to nothing: the condition is not true
            return False
        return _sql_equal(value, self.literal) != self.negated


@dataclass(frozen=True)
class ParsedRule:
    """A rule's SQL, parsed: what it listens to, what it filters on and what it outputs."""

    sql: str
    topic_filter: str
    items: tuple[SelectItem, ...]
    conditions: tuple[Comparison, ...]

    def matches(self, topic: str) -> bool:
        return topic_matches_sub(self.topic_filter, topic)

    def evaluate(self, topic: str, payload: bytes, now_ms: int) -> dict[str, Any] | None:
        """The rule's output for a message on a matching topic; None when WHERE is not true.

        WHERE is evaluated first (as in AWS), so a filtered-out message never fails SELECT.
        Raises `RuleEvaluationError` when SELECT cannot be computed (``*`` on a non-JSON payload).
        """
        message = Message(topic, payload, now_ms)
        if not all(condition.holds(message) for condition in self.conditions):
            return None
        output: dict[str, Any] = {}
        for item in self.items:
            item.contribute(message, output)
        return output
