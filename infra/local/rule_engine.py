"""The local IoT rules engine without MQTT: one message and one rule in, an `Outcome` out.

A rule's output goes to each of its actions; when one fails, the rule's error action gets AWS's
error document. When the error action fails too, `ParkingFailed` says so, and `DirectParking`
is the last resort: the message goes to the ParkedTable (source ``iot-rules``, bounded item),
so one poison message never stalls the stream.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aftercare.adapters.parked import MAX_EXCERPT_BYTES, DynamoParkedStore
from aftercare.domain.ports import ParkedMessage
from botocore.exceptions import BotoCoreError, ClientError

from infra.local.basic_ingest import basic_ingest_target
from infra.local.bridge_spec import BridgeSpec
from infra.local.iot_sql import ParsedRule, RuleEvaluationError, UnsupportedRuleSql
from infra.local.iot_sql_parser import parse_sql
from infra.local.rule_actions import Action, ActionFailed, build_action

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger("infra.local.iotrule")


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


def rules_for(rules: Sequence[Rule], topic: str) -> tuple[list[Rule], str]:
    """The rules a message on `topic` goes to, and the topic they see: those whose FROM filter
    matches it; for a Basic Ingest topic, the named rule alone on the topic without the prefix
    (none when no enabled rule has that name: AWS logs RuleNotFound)."""
    target = basic_ingest_target(topic)
    if target is None:
        return [rule for rule in rules if rule.parsed.matches(topic)], topic
    name, unprefixed = target
    matching = [rule for rule in rules if rule.name == name]
    if not matching:
        logger.warning("RuleNotFound: no enabled rule %s for Basic Ingest", name)
    return matching, unprefixed


@dataclass(frozen=True)
class Inbound:
    """One MQTT message as the bridge received it."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    generation: int  # which connection delivered it; acks are only valid on that connection
    received_ms: int


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
