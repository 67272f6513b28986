"""The local IoT rules engine: the AWS IoT SQL subset and how a rule settles one message."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from aftercare.models.payloads import FaultEnvelope
from paho.mqtt.client import topic_matches_sub

from infra.local.iot_sql import RuleEvaluationError, UnsupportedRuleSql
from infra.local.iot_sql_parser import parse_sql
from infra.local.rule_actions import ActionFailed
from infra.local.rule_engine import Outcome, ParkingFailed, Rule, apply_rule

ROOT = Path(__file__).resolve().parents[2]
NOW_MS = 1_795_780_800_000


class _IgnoreTagsLoader(yaml.SafeLoader):
    """Reads template.yaml without resolving CloudFormation tags (!Sub, !Ref, ...)."""


def _construct_any(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_IgnoreTagsLoader.add_multi_constructor("!", _construct_any)


@pytest.fixture(scope="module")
def fault_rule_sql() -> str:
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_IgnoreTagsLoader)
    return template["Resources"]["FaultTopicRule"]["Properties"]["TopicRulePayload"]["Sql"]


# ---------------------------------------------------------------------------------------------
# The template's own rule
# ---------------------------------------------------------------------------------------------
def test_fault_rule_from_the_template_listens_on_fault_topics(fault_rule_sql):
    # Given the FaultTopicRule SQL exactly as template.yaml has it
    # When it is parsed
    rule = parse_sql(fault_rule_sql)
    # Then it listens on every device's fault topic and nothing else
    assert rule.topic_filter == "dt/aftercare/+/fault"
    assert rule.matches("dt/aftercare/ac-hp-0004/fault")
    assert not rule.matches("dt/aftercare/ac-hp-0004/telemetry")


def test_fault_rule_output_is_a_fault_envelope(fault_rule_sql):
    # Given a device's JSON fault report
    payload = json.dumps({"fault_id": "f-00000001", "code": "FAN-STALL"}).encode()
    # When the template's rule evaluates it
    output = parse_sql(fault_rule_sql).evaluate("dt/aftercare/ac-hp-0004/fault", payload, NOW_MS)
    # Then the output is exactly what FaultIntake expects, thing taken from the topic
    assert output == {
        "payload_b64": base64.b64encode(payload).decode(),
        "thing": "ac-hp-0004",
        "received_at": NOW_MS,
        "topic": "dt/aftercare/ac-hp-0004/fault",
    }
    FaultEnvelope.model_validate(output)


def test_fault_rule_carries_a_non_json_payload_opaquely(fault_rule_sql):
    # Given a payload that is not JSON at all
    payload = b"\xff\x00 not json {"
    # When the template's rule evaluates it
    output = parse_sql(fault_rule_sql).evaluate("dt/aftercare/ac-hp-0004/fault", payload, NOW_MS)
    # Then it still reaches the queue, byte for byte, for the function to reject with a reason
    assert output is not None
    assert base64.b64decode(output["payload_b64"]) == payload


# ---------------------------------------------------------------------------------------------
# SELECT
# ---------------------------------------------------------------------------------------------
def test_topic_segments_are_one_based_and_missing_ones_are_left_out():
    # Given a rule selecting the 1st, 3rd and 9th topic segments
    rule = parse_sql("SELECT topic(1) AS a, topic(3) AS c, topic(9) AS i FROM 'x/#'")
    # When a 3-segment topic arrives
    output = rule.evaluate("x/y/z", b"{}", NOW_MS)
    # Then segments count from 1 and an out-of-range segment (Undefined) adds no key
    assert output == {"a": "x", "c": "z"}


def test_encode_base64_works_on_any_bytes():
    # Given every possible byte value as the payload
    payload = bytes(range(256))
    # When encode(*, 'base64') selects it
    output = parse_sql("SELECT encode(*, 'base64') AS raw FROM 'x'").evaluate("x", payload, NOW_MS)
    # Then the original bytes round-trip
    assert output is not None
    assert base64.b64decode(output["raw"]) == payload


def test_timestamp_is_the_receive_time_in_epoch_milliseconds():
    # Given a rule selecting timestamp()
    rule = parse_sql("SELECT timestamp() AS at FROM 'x'")
    # When evaluated with a receive time
    output = rule.evaluate("x", b"{}", NOW_MS)
    # Then that time is the value
    assert output == {"at": NOW_MS}


def test_newuuid_is_a_fresh_uuid_per_message():
    # Given a rule selecting newuuid()
    rule = parse_sql("SELECT newuuid() AS id FROM 'x'")
    # When two messages are evaluated
    first, second = (rule.evaluate("x", b"{}", NOW_MS) for _ in range(2))
    # Then each gets its own valid UUID
    assert first and second
    assert first["id"] != second["id"]
    uuid.UUID(first["id"])


def test_star_merges_the_payload_with_named_items():
    # Given SELECT * plus a named item
    rule = parse_sql("SELECT *, topic(2) AS thing FROM 'dt/+'")
    # When a JSON object arrives
    output = rule.evaluate("dt/t-1", b'{"code": "E1", "nested": {"a": 1}}', NOW_MS)
    # Then the output has the payload's keys and the named one
    assert output == {"code": "E1", "nested": {"a": 1}, "thing": "t-1"}


def test_star_on_an_empty_payload_adds_nothing():
    # Given SELECT * with a named item and an empty payload
    rule = parse_sql("SELECT *, topic() AS t FROM 'x'")
    # When evaluated
    output = rule.evaluate("x", b"", NOW_MS)
    # Then only the named item is there
    assert output == {"t": "x"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"\x00\x01 binary", "not valid JSON"), (b"[1, 2]", "JSON list, not an object")],
)
def test_star_needs_a_json_object_payload(payload, reason):
    # Given SELECT * (AWS requires a JSON payload to merge)
    rule = parse_sql("SELECT * FROM 'x'")
    # When a payload that is not a JSON object arrives
    with pytest.raises(RuleEvaluationError) as error:
        rule.evaluate("x", payload, NOW_MS)
    # Then evaluation fails (the error action will see why)
    assert reason in error.value.reason


def test_keywords_and_functions_are_case_insensitive():
    # Given a rule in mixed case
    rule = parse_sql(
        "select Encode(*, 'BASE64') as b, TOPIC(1) As t from 'x/+' Where topic(2) = 'y'"
    )
    # When evaluated
    output = rule.evaluate("x/y", b"ab", NOW_MS)
    # Then it behaves like the upper-case form (aliases keep their case)
    assert output == {"b": "YWI=", "t": "x"}


# ---------------------------------------------------------------------------------------------
# WHERE
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "topic", "payload", "passes"),
    [
        ("topic(3) = 'fault'", "dt/a/fault", b"{}", True),
        ("topic(3) = 'fault'", "dt/a/telemetry", b"{}", False),
        ("topic(3) <> 'fault'", "dt/a/telemetry", b"{}", True),
        ("topic() = 'dt/a/fault'", "dt/a/fault", b"{}", True),
        ("severity = 'major'", "dt/a/fault", b'{"severity": "major"}', True),
        ("severity = 'major'", "dt/a/fault", b'{"severity": "minor"}', False),
        ("severity <> 'major'", "dt/a/fault", b'{"severity": "minor"}', True),
        ("rpm = 0", "dt/a/fault", b'{"rpm": 0}', True),
        ("rpm = 0", "dt/a/fault", b'{"rpm": 0.0}', True),
        ("temp = -1.5", "dt/a/fault", b'{"temp": -1.5}', True),
        ("rpm = 0", "dt/a/fault", b'{"rpm": "0"}', False),
        ("rpm = 0", "dt/a/fault", b'{"rpm": false}', False),
        ("readings.rpm = 0", "dt/a/fault", b'{"readings": {"rpm": 0}}', True),
        ("rpm = 0 AND topic(2) = 'a'", "dt/a/fault", b'{"rpm": 0}', True),
        ("rpm = 0 AND topic(2) = 'b'", "dt/a/fault", b'{"rpm": 0}', False),
        ("missing = 'x'", "dt/a/fault", b"{}", False),
        ("missing <> 'x'", "dt/a/fault", b"{}", False),
        ("rpm = 0", "dt/a/fault", b"not json", False),
    ],
)
def test_where_decides_whether_the_rule_fires(where, topic, payload, passes):
    # Given a rule with a WHERE clause
    rule = parse_sql(f"SELECT topic() AS t FROM 'dt/#' WHERE {where}")
    # When a message is evaluated
    output = rule.evaluate(topic, payload, NOW_MS)
    # Then the rule fires exactly when the condition is true (Undefined is not true)
    assert (output is not None) is passes


def test_where_is_evaluated_before_select():
    # Given SELECT * filtered to another topic segment
    rule = parse_sql("SELECT * FROM 'dt/+' WHERE topic(2) = 'json-only'")
    # When a binary payload arrives on a topic the WHERE rejects
    output = rule.evaluate("dt/binary", b"\x00", NOW_MS)
    # Then the rule is simply filtered out, not an evaluation error
    assert output is None


# ---------------------------------------------------------------------------------------------
# Unsupported SQL is named precisely
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT clientid() AS c FROM 'x'", "clientid() cannot be emulated"),
        ("SELECT principal() AS p FROM 'x'", "function principal() is not supported"),
        ("SELECT lower(topic()) AS t FROM 'x'", "function lower() is not supported"),
        ("SELECT * FROM (SELECT * FROM 'x')", "nested SELECT (subquery)"),
        ("SELECT * FROM 'x' WHERE a = 1 OR b = 2", "operator OR"),
        ("SELECT * FROM 'x' WHERE NOT a = 1", "operator NOT"),
        ("SELECT * FROM 'x' WHERE a > 1", "operator '>'"),
        ("SELECT * FROM 'x' WHERE a != 1", "operator '!='"),
        ("SELECT * FROM 'x' WHERE a IN ('b')", "operator IN"),
        ("SELECT * FROM 'x' WHERE a LIKE 'b%'", "operator LIKE"),
        ("SELECT * FROM 'x' WHERE a = true", "boolean literal TRUE"),
        ("SELECT * FROM 'x' WHERE a = b", "expected a 'string' or number literal"),
        ("SELECT * FROM 'x' WHERE timestamp() = 1", "not timestamp()"),
        ("SELECT * FROM 'x' WHERE (a = 1)", "parenthesised conditions"),
        ("SELECT * FROM 'x' WHERE a[0] = 1", "array indexing"),
        ("SELECT * FROM 'x' ORDER BY a", "clause ORDER BY"),
        ("SELECT * FROM 'x' LIMIT 1", "clause LIMIT"),
        ("SELECT VALUE * FROM 'x'", "SELECT VALUE"),
        ("SELECT CASE a WHEN 1 THEN 2 END AS c FROM 'x'", "CASE expressions"),
        ("SET @a = 1 SELECT * FROM 'x'", "SET clause"),
        ("SELECT color AS c FROM 'x'", "selecting payload fields (color)"),
        ("SELECT 'lit' AS c FROM 'x'", "literal values in SELECT"),
        ("SELECT topic() FROM 'x'", "topic() needs a name"),
        ("SELECT timestamp() + 1 AS t FROM 'x'", "operator '+'"),
        ("SELECT encode(color, 'base64') AS b FROM 'x'", "only on *"),
        ("SELECT encode(*, 'hex') AS b FROM 'x'", "only the 'base64' encoding"),
        ("SELECT topic(0) AS t FROM 'x'", "positive segment number"),
        ("SELECT timestamp(1) AS t FROM 'x'", "timestamp() takes no arguments"),
        ("SELECT *, * FROM 'x'", "* may appear only once"),
        ('SELECT * FROM "x"', "double-quoted"),
        ("SELECT * FROM 'x/#/y'", "'#' must be the last level"),
        ("SELECT * FROM 'x/a+'", "wildcards must occupy a whole level"),
        ("SELECT * FROM ''", "it is empty"),
        ("SELECT * FROM 'x", "unterminated string literal"),
        ("SELECT * FROM x", "a quoted topic filter"),
        ("SELECT *", "end of SQL"),
        ("", "SELECT at the start"),
    ],
)
def test_unsupported_sql_is_rejected_naming_the_construct(sql, named):
    # Given SQL outside the emulated subset
    # When it is parsed
    with pytest.raises(UnsupportedRuleSql) as error:
        parse_sql(sql)
    # Then the error names what is unsupported
    assert named in str(error.value)


def test_clientid_rejection_explains_why():
    # Given a rule selecting the publisher's client id
    # When it is parsed
    with pytest.raises(UnsupportedRuleSql) as error:
        parse_sql("SELECT *, clientid() AS c FROM 'x'")
    # Then the message says why it cannot be emulated
    assert "MQTT subscribers do not learn the publisher's client id" in str(error.value)


# ---------------------------------------------------------------------------------------------
# Topic filters
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("dt/aftercare/+/fault", "dt/aftercare/t-1/fault", True),
        ("dt/aftercare/+/fault", "dt/aftercare/t-1/telemetry", False),
        ("dt/aftercare/+/fault", "dt/aftercare/t-1/fault/extra", False),
        ("dt/aftercare/+/fault", "dt/aftercare//fault", True),
        ("dt/aftercare/#", "dt/aftercare/t-1/fault", True),
        ("dt/aftercare/#", "dt/aftercare", True),
        ("dt/aftercare/#", "dt/other/t-1", False),
        ("#", "anything/at/all", True),
        ("+/+", "a/b", True),
        ("+/+", "a", False),
        ("#", "$SYS/broker/load", False),
        ("+/broker/load", "$SYS/broker/load", False),
        ("$SYS/#", "$SYS/broker/load", True),
        ("a/b", "a/b", True),
        ("a/b", "a/B", False),
    ],
)
def test_topic_filter_matching(topic_filter, topic, matches):
    # Given an MQTT topic filter and a topic
    # When they are compared
    # Then + matches one level, # the rest (including the parent), and $-topics need a literal
    assert topic_matches_sub(topic_filter, topic) is matches


# ---------------------------------------------------------------------------------------------
# Settling one message: actions and the error action
# ---------------------------------------------------------------------------------------------
class RecordingAction:
    kind: ClassVar[str] = "SqsAction"

    def __init__(self, resource: str = "https://sqs/queue", fails: int = 0) -> None:
        self.resource = resource
        self.documents: list[dict[str, Any]] = []
        self._fails = fails

    def run(self, document: dict[str, Any]) -> None:
        if self._fails:
            self._fails -= 1
            raise ActionFailed(f"Failed to send message to {self.resource}")
        self.documents.append(document)


def rule(sql: str, actions: list[RecordingAction], error_action: RecordingAction | None) -> Rule:
    return Rule("fault_rule", parse_sql(sql), tuple(actions), error_action)


def test_a_delivered_message_reaches_every_action_and_not_the_error_action():
    # Given a rule with two actions and an error action
    first, second, errors = RecordingAction(), RecordingAction(), RecordingAction()
    r = rule("SELECT topic() AS t FROM 'x'", [first, second], errors)
    # When a message is applied
    outcome = apply_rule(r, "x", b"{}", NOW_MS)
    # Then both actions got the output and the error action nothing
    assert outcome is Outcome.DELIVERED
    assert first.documents == second.documents == [{"t": "x"}]
    assert errors.documents == []


def test_a_failed_action_is_parked_in_the_aws_error_action_shape():
    # Given a rule whose action fails
    failing, errors = RecordingAction("https://sqs/missing", fails=1), RecordingAction()
    r = rule("SELECT topic() AS t FROM 'x'", [failing], errors)
    # When a message is applied
    outcome = apply_rule(r, "x", b"\x00raw", NOW_MS)
    # Then the error action receives AWS's error message with the failure and the payload
    assert outcome is Outcome.PARKED
    (parked,) = errors.documents
    assert set(parked) == {
        "ruleName",
        "topic",
        "cloudwatchTraceId",
        "clientId",
        "base64OriginalPayload",
        "failures",
    }
    assert parked["ruleName"] == "fault_rule"
    assert parked["topic"] == "x"
    assert parked["clientId"] == ""
    assert base64.b64decode(parked["base64OriginalPayload"]) == b"\x00raw"
    assert parked["failures"] == [
        {
            "failedAction": "SqsAction",
            "failedResource": "https://sqs/missing",
            "errorMessage": "Failed to send message to https://sqs/missing",
        }
    ]


def test_an_evaluation_error_is_parked_as_a_rule_evaluation_failure():
    # Given SELECT * and a binary payload
    action, errors = RecordingAction(), RecordingAction()
    r = rule("SELECT * FROM 'x'", [action], errors)
    # When the message is applied
    outcome = apply_rule(r, "x", b"\xffbinary", NOW_MS)
    # Then no action ran and the error action recorded a RuleEvaluation failure
    assert outcome is Outcome.PARKED
    assert action.documents == []
    (failure,) = errors.documents[0]["failures"]
    assert failure["failedAction"] == "RuleEvaluation"
    assert failure["failedResource"] == "fault_rule"
    assert "not valid JSON" in failure["errorMessage"]


def test_a_filtered_message_runs_nothing():
    # Given a rule whose WHERE is false for the message
    action, errors = RecordingAction(), RecordingAction()
    r = rule("SELECT * FROM 'x/+' WHERE topic(2) = 'yes'", [action], errors)
    # When applied
    outcome = apply_rule(r, "x/no", b"\x00", NOW_MS)
    # Then neither the actions nor the error action ran
    assert outcome is Outcome.FILTERED
    assert action.documents == errors.documents == []


def test_when_the_error_action_fails_too_the_message_is_not_settled():
    # Given a rule whose action and error action both fail
    r = rule("SELECT * FROM 'x'", [RecordingAction(fails=1)], RecordingAction(fails=1))
    # When a message is applied
    # Then the caller is told not to acknowledge it
    with pytest.raises(ParkingFailed):
        apply_rule(r, "x", b"{}", NOW_MS)


def test_without_an_error_action_a_failure_drops_the_message_like_aws():
    # Given a rule without an error action whose action fails
    r = rule("SELECT * FROM 'x'", [RecordingAction(fails=1)], None)
    # When a message is applied
    outcome = apply_rule(r, "x", b"{}", NOW_MS)
    # Then it is reported as dropped
    assert outcome is Outcome.DROPPED
