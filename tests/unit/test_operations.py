"""Operations coverage of template.yaml: what reaches a person when something goes wrong.

Every list here is derived from the template itself (functions, queues, dead-letter queues,
stream consumers, topic rules), so a function, queue or stream consumer added without its log
group, alarms, destination or dashboard entry fails these tests, naming what is missing.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.template import Resource, Template, load_template

REAL_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
FUNCTION = "AWS::Serverless::Function"
QUEUE = "AWS::SQS::Queue"
ALARM = "AWS::CloudWatch::Alarm"
OPS_TOPIC = "OpsAlertsTopic"
# What CloudWatch Logs accepts for RetentionInDays (PutRetentionPolicy).
CLOUDWATCH_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731]
CLOUDWATCH_RETENTION_DAYS += [1096, 1827, 2192, 2557, 2922, 3288, 3653]


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(REAL_TEMPLATE)


# ----------------------------------------------------------------------------- reading the template


def of_type(template: Template, kind: str) -> dict[str, Resource]:
    return {lid: r for lid, r in template.resources.items() if r.type == kind}


def target(value: Any) -> str | None:
    """The logical id behind `!Ref X` or `!GetAtt X.Attr`, else None."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return None


def events(template: Template, *kinds: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(function, event id, properties) of every function event of the given types."""
    for lid, function in of_type(template, FUNCTION).items():
        for event_id, event in (function.properties.get("Events") or {}).items():
            if event.get("Type") in kinds:
                yield lid, event_id, event.get("Properties") or {}


def drained_queues(template: Template) -> dict[str, str]:
    """Queue -> the function that polls it."""
    return {target(props["Queue"]) or "": lid for lid, _, props in events(template, "SQS")}


def dead_letter_queues(template: Template) -> set[str]:
    """Queues that receive what failed elsewhere: redrive targets, stream on-failure
    destinations, topic-rule error actions and EventBridge target DLQs."""
    found: set[str] = set()
    for queue in of_type(template, QUEUE).values():
        redrive = queue.properties.get("RedrivePolicy") or {}
        found.add(target(redrive.get("deadLetterTargetArn")) or "")
    for _, _, props in events(template, "DynamoDB", "Kinesis"):
        on_failure = (props.get("DestinationConfig") or {}).get("OnFailure") or {}
        found.add(target(on_failure.get("Destination")) or "")
    for rule in of_type(template, "AWS::IoT::TopicRule").values():
        error = rule.properties["TopicRulePayload"].get("ErrorAction") or {}
        found.add(target((error.get("Sqs") or {}).get("QueueUrl")) or "")
    for rule in of_type(template, "AWS::Events::Rule").values():
        for rule_target in rule.properties.get("Targets", []):
            found.add(target((rule_target.get("DeadLetterConfig") or {}).get("Arn")) or "")
    return found - {""}


def alarmed(template: Template, namespace: str, metric: str, dimension: str) -> set[str]:
    """Logical ids watched by an alarm on `namespace`/`metric` through `dimension`."""
    watched = set()
    for alarm in of_type(template, ALARM).values():
        props = alarm.properties
        if (props.get("Namespace"), props.get("MetricName")) != (namespace, metric):
            continue
        for entry in props.get("Dimensions", []):
            if entry["Name"] == dimension:
                watched.add(target(entry["Value"]) or "")
    return watched


def query_alarms(template: Template) -> list[str]:
    """The Metrics Insights / math expressions of every multi-metric alarm."""
    expressions = []
    for alarm in of_type(template, ALARM).values():
        for query in alarm.properties.get("Metrics", []):
            expression = query.get("Expression", "")
            expressions.append(
                expression.get("Fn::Sub", "") if isinstance(expression, dict) else expression
            )
    return expressions


def timeout_of(function: Resource) -> int:
    return int(function.properties.get("Timeout", 3))


# ----------------------------------------------------------------------------- what is missing


def functions_without_alarms(template: Template) -> dict[str, list[str]]:
    missing = {}
    for metric in ("Errors", "Throttles"):
        absent = set(of_type(template, FUNCTION)) - alarmed(
            template, "AWS/Lambda", metric, "FunctionName"
        )
        missing[metric] = sorted(absent)
    return missing


def functions_without_log_groups(template: Template) -> list[str]:
    missing = []
    groups = of_type(template, "AWS::Logs::LogGroup")
    for lid, function in of_type(template, FUNCTION).items():
        group = target((function.properties.get("LoggingConfig") or {}).get("LogGroup"))
        retention = groups[group].properties.get("RetentionInDays") if group in groups else None
        if retention != {"Ref": "LogRetentionDays"}:
            missing.append(lid)
    return sorted(missing)


def queues_without_age_alarms(template: Template) -> list[str]:
    watched = alarmed(template, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName")
    return sorted(set(of_type(template, QUEUE)) - watched)


def dead_letter_queues_without_arrival_alarms(template: Template) -> list[str]:
    # A function drains its DLQ within seconds (nothing stays visible) and redriven messages are
    # not counted as sent: every arrival is counted as received. A DLQ nobody drains keeps its
    # messages visible until a person deals with them.
    drained = drained_queues(template)
    received = alarmed(template, "AWS/SQS", "NumberOfMessagesReceived", "QueueName")
    visible = alarmed(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    return sorted(
        queue
        for queue in dead_letter_queues(template)
        if queue not in (received if queue in drained else visible)
    )


def stream_consumers_without_safety_nets(template: Template) -> list[str]:
    queues = of_type(template, QUEUE)
    lagging = alarmed(template, "AWS/Lambda", "IteratorAge", "FunctionName")
    missing = []
    for lid, event_id, props in events(template, "DynamoDB", "Kinesis"):
        on_failure = (props.get("DestinationConfig") or {}).get("OnFailure") or {}
        if target(on_failure.get("Destination")) not in queues or lid not in lagging:
            missing.append(f"{lid}.{event_id}")
    return missing


def functions_missing_from_dashboard(template: Template) -> list[str]:
    bodies = [
        str(dashboard.properties["DashboardBody"])
        for dashboard in of_type(template, "AWS::CloudWatch::Dashboard").values()
    ]
    return sorted(
        lid for lid in of_type(template, FUNCTION) if not any(f"${{{lid}}}" in b for b in bodies)
    )


def handler_source(template: Template, function: Resource) -> tuple[Path, str]:
    """The handler file of `function` and the name of its handler function."""
    module, _, name = str(function.properties["Handler"]).rpartition(".")
    code_uri = str(function.properties["CodeUri"])
    return template.root / code_uri / f"{module.replace('.', '/')}.py", name


def _imports(tree: ast.Module, module: str, name: str) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == module
        and any(alias.name == name and alias.asname is None for alias in node.names)
        for node in tree.body
    )


def _switches_cold_starts_off(call: ast.Call | None) -> bool:
    return any(
        k.arg == "capture_cold_start_metric"
        and not (isinstance(k.value, ast.Constant) and k.value.value is True)
        for k in (call.keywords if call else [])
    )


def counts_cold_starts(path: Path, handler: str) -> bool:
    """The handler is wrapped in the shared `entry_point` (aftercare.runtime) or decorated with
    the shared `metrics.log_metrics`, both recording ColdStart (on by default in
    `aftercare.observability.ServiceMetrics`), and does not switch the metric off."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    shared = {
        "entry_point": _imports(tree, "aftercare.runtime", "entry_point"),
        "metrics.log_metrics": _imports(tree, "aftercare.observability", "metrics"),
    }
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == handler:
            for decorator in node.decorator_list:
                call = decorator if isinstance(decorator, ast.Call) else None
                name = ast.unparse(call.func if call else decorator)
                if shared.get(name):
                    return not _switches_cold_starts_off(call)
    return False


def functions_without_cold_start_metric(template: Template) -> list[str]:
    return sorted(
        lid
        for lid, function in of_type(template, FUNCTION).items()
        if not counts_cold_starts(*handler_source(template, function))
    )


def dashboard_metric_searches(template: Template) -> list[str]:
    searches = []
    for dashboard in of_type(template, "AWS::CloudWatch::Dashboard").values():
        body = dashboard.properties["DashboardBody"]
        text = body.get("Fn::Sub", "") if isinstance(body, dict) else str(body)
        for widget in json.loads(text)["widgets"]:
            for metric in (widget.get("properties") or {}).get("metrics", []):
                if isinstance(metric, dict):
                    searches.append(metric.get("expression", ""))
    return searches


# ----------------------------------------------------------------------------- the specification


def test_every_function_has_errors_and_throttles_alarms(template: Template) -> None:
    assert functions_without_alarms(template) == {"Errors": [], "Throttles": []}


def test_every_function_logs_to_its_own_log_group_with_retention(template: Template) -> None:
    assert functions_without_log_groups(template) == []
    groups = [
        target(f.properties["LoggingConfig"]["LogGroup"])
        for f in of_type(template, FUNCTION).values()
    ]
    assert len(groups) == len(set(groups))


def test_log_retention_accepts_only_what_cloudwatch_accepts(template: Template) -> None:
    assert template.parameters["LogRetentionDays"]["AllowedValues"] == CLOUDWATCH_RETENTION_DAYS


def test_every_queue_has_an_age_alarm(template: Template) -> None:
    assert queues_without_age_alarms(template) == []


def test_every_dead_letter_queue_has_an_arrival_alarm(template: Template) -> None:
    assert {"FaultDeadLetterQueue", "StockWatcherFailureQueue"} <= dead_letter_queues(template)
    assert dead_letter_queues_without_arrival_alarms(template) == []


def test_every_stream_consumer_has_an_on_failure_queue_and_an_iterator_age_alarm(
    template: Template,
) -> None:
    assert len(list(events(template, "DynamoDB"))) >= 3
    assert stream_consumers_without_safety_nets(template) == []


def test_the_dashboard_shows_every_function(template: Template) -> None:
    assert functions_missing_from_dashboard(template) == []


def test_every_alarm_notifies_the_ops_topic(template: Template) -> None:
    actions = {lid: a.properties.get("AlarmActions") for lid, a in of_type(template, ALARM).items()}
    assert {lid: a for lid, a in actions.items() if a != [{"Ref": OPS_TOPIC}]} == {}


def test_cloudwatch_can_use_the_ops_topic_key(template: Template) -> None:
    # The AWS-managed alias/aws/sns key cannot be granted to CloudWatch: alarms would be dropped
    key_id = target(template.resources[OPS_TOPIC].properties["KmsMasterKeyId"])
    key = template.resources[str(key_id)]
    assert key.type == "AWS::KMS::Key"
    principals = [s["Principal"] for s in key.properties["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals


def test_every_iot_rule_has_action_and_error_action_failure_alarms(template: Template) -> None:
    expressions = query_alarms(template)
    for rule in of_type(template, "AWS::IoT::TopicRule"):
        for metric in ("Failure", "ErrorActionFailure"):
            assert any(f"SUM({metric})" in e and f"${{{rule}}}" in e for e in expressions), (
                rule,
                metric,
            )


def test_a_rise_in_rejected_faults_raises_an_alarm(template: Template) -> None:
    assert any("SUM(FaultRejected) FROM Aftercare" in e for e in query_alarms(template))


def test_every_function_counts_its_cold_starts(template: Template) -> None:
    assert len(of_type(template, FUNCTION)) >= 11
    assert functions_without_cold_start_metric(template) == []


def test_the_shared_entry_point_records_a_cold_start_on_the_first_invocation(
    capsys, monkeypatch
) -> None:
    # Given a handler wrapped like every function's, in the shared entry point
    from aftercare.observability import metrics
    from aftercare.runtime import entry_point
    from aws_lambda_powertools.metrics.provider import cold_start

    @entry_point
    def handler(event: dict, context: object) -> dict:
        metrics.add_metric(name="Handled", unit="Count", value=1)
        return {}

    class Context:
        function_name = "aftercare-fault-intake-test"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
        aws_request_id = "req-1"

    monkeypatch.setattr(cold_start, "is_cold_start", True)
    # When the execution environment's first and second invocations run
    handler({}, Context())
    handler({}, Context())
    # Then exactly one ColdStart is emitted, by function name
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    starts = [b for b in blobs if "ColdStart" in b]
    assert [(b["ColdStart"], b["function_name"]) for b in starts] == [
        ([1.0], "aftercare-fault-intake-test")
    ]


def test_the_dashboard_shows_cold_starts_and_sla_breaches(template: Template) -> None:
    searches = dashboard_metric_searches(template)
    assert any('MetricName="ColdStart"' in s and "function_name" in s for s in searches)
    assert any('MetricName="SlaBreached"' in s for s in searches)


def test_an_sla_breach_raises_an_alarm(template: Template) -> None:
    assert any("SUM(SlaBreached) FROM Aftercare" in e for e in query_alarms(template))


def test_a_handler_that_switches_cold_starts_off_is_reported(tmp_path: Path) -> None:
    # Given handlers that use their own Metrics, or switch the ColdStart metric off, and one
    # in the shared entry point
    own = tmp_path / "own.py"
    own.write_text(
        "from aws_lambda_powertools import Metrics\nmetrics = Metrics()\n"
        "@metrics.log_metrics\ndef handler(event, context):\n    return {}\n"
    )
    off = tmp_path / "off.py"
    off.write_text(
        "from aftercare.observability import metrics\n"
        "@metrics.log_metrics(capture_cold_start_metric=False)\n"
        "def handler(event, context):\n    return {}\n"
    )
    shared = tmp_path / "shared.py"
    shared.write_text(
        "from aftercare.observability import metrics\n"
        "@metrics.log_metrics\ndef handler(event, context):\n    return {}\n"
    )
    wrapped = tmp_path / "wrapped.py"
    wrapped.write_text(
        "from aftercare.runtime import entry_point\n"
        "@entry_point\ndef handler(event, context):\n    return {}\n"
    )
    # Then only the shared, default decorations count
    assert not counts_cold_starts(own, "handler")
    assert not counts_cold_starts(off, "handler")
    assert counts_cold_starts(shared, "handler")
    assert counts_cold_starts(wrapped, "handler")


def test_lambda_polled_queues_outlast_six_timeouts_and_cap_their_concurrency(
    template: Template,
) -> None:
    # A message must stay invisible while a batch is retried; a capped poller never throttles
    # (a throttle counts as a receive and would dead-letter healthy messages).
    queues = of_type(template, QUEUE)
    functions = of_type(template, FUNCTION)
    for lid, event_id, props in events(template, "SQS"):
        queue = queues[target(props["Queue"]) or ""]
        visibility = int(queue.properties.get("VisibilityTimeout", 30))
        assert visibility >= 6 * timeout_of(functions[lid]), (lid, event_id)
        assert props["ScalingConfig"]["MaximumConcurrency"] == {
            "Ref": "QueueConsumerMaxConcurrency"
        }
        redrive = queue.properties.get("RedrivePolicy")
        assert redrive is None or int(redrive["maxReceiveCount"]) >= 5


def test_iot_rule_roles_trust_only_this_accounts_rules(template: Template) -> None:
    for rule in of_type(template, "AWS::IoT::TopicRule").values():
        role = template.resources[
            str(target(rule.properties["TopicRulePayload"]["Actions"][0]["Sqs"]["RoleArn"]))
        ]
        (statement,) = role.properties["AssumeRolePolicyDocument"]["Statement"]
        condition = statement["Condition"]
        assert condition["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
        assert "aws:SourceArn" in condition["ArnEquals"]


def test_low_stock_events_reach_a_person(template: Template) -> None:
    routes = [
        rule.properties
        for rule in of_type(template, "AWS::Events::Rule").values()
        if rule.properties.get("EventBusName") == {"Ref": "PartsEventBus"}
        and "aftercare.parts.low_stock" in rule.properties["EventPattern"]["detail-type"]
    ]
    assert routes, "nothing consumes the low-stock events"
    topics = {target(t["Arn"]) for route in routes for t in route["Targets"]}
    assert all(template.resources[str(t)].type == "AWS::SNS::Topic" for t in topics)


# ----------------------------------------------------------------------------- the checks bite


def with_resource(template: Template, lid: str, resource: dict[str, Any]) -> Template:
    resources = dict(template.resources)
    resources[lid] = Resource(lid, resource["Type"], copy.deepcopy(resource["Properties"]))
    return dataclasses.replace(template, resources=resources)


def test_a_new_function_queue_or_stream_consumer_without_operations_is_reported(
    template: Template,
) -> None:
    # Given a queue and a stream consumer added with none of the operations around them
    bare = with_resource(
        template,
        "ExtraQueue",
        {"Type": QUEUE, "Properties": {"QueueName": "extra"}},
    )
    bare = with_resource(
        bare,
        "ExtraFunction",
        {
            "Type": FUNCTION,
            "Properties": {
                "Events": {
                    "Changes": {
                        "Type": "DynamoDB",
                        "Properties": {
                            "Stream": {"Fn::GetAtt": ["TicketsTable", "StreamArn"]},
                            "DestinationConfig": {
                                "OnFailure": {"Destination": {"Fn::GetAtt": ["ExtraQueue", "Arn"]}}
                            },
                        },
                    }
                }
            },
        },
    )
    # Then every check names them
    assert functions_without_alarms(bare) == {
        "Errors": ["ExtraFunction"],
        "Throttles": ["ExtraFunction"],
    }
    assert functions_without_log_groups(bare) == ["ExtraFunction"]
    assert queues_without_age_alarms(bare) == ["ExtraQueue"]
    assert dead_letter_queues_without_arrival_alarms(bare) == ["ExtraQueue"]
    assert stream_consumers_without_safety_nets(bare) == ["ExtraFunction.Changes"]
    assert functions_missing_from_dashboard(bare) == ["ExtraFunction"]
