"""Create the template's resources in a moto server, from the template's own properties.

Resources are created in dependency order (Ref / GetAtt / Sub / DependsOn edges). Each supported
type has a provisioner that maps the CloudFormation properties onto the matching API call and
returns the attributes `!Ref` / `!GetAtt` see. Functions and topic rules are not run by moto:
they become specs for the worker processes and the IoT-rule bridge.

Every property is either applied, or deliberately ignored because it has no local behaviour
(IAM, tracing, capacity...), or refused: an unknown resource type, property or event type stops
start-up with a message naming the resource, so the local stack never silently drifts from what
the template deploys.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from infra.local.iot_sql import UnsupportedRuleSql
from infra.local.iot_sql_parser import parse_sql
from infra.local.provision_api import HTTP_API_EVENT_APPLIED, HTTP_API_EVENT_IGNORED
from infra.local.provision_api import PROVISIONERS as API_PROVISIONERS
from infra.local.provision_messaging import provision_email_identity
from infra.local.template import (
    DEFAULT_ACCOUNT_ID,
    Resolver,
    Resource,
    Template,
    TemplateError,
    dependency_order,
    parameter_values,
    pseudo_parameters,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iot import IoTClient
    from mypy_boto3_iot.type_defs import TopicRulePayloadTypeDef
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

log = logging.getLogger(__name__)

DEFAULT_REGION: Final = "us-east-1"
DEFAULT_STACK_NAME: Final = "aftercare-local"
LOCAL_PARAMETER_DEFAULTS: Final = {"Stage": "local"}

# Resource types the local stack knowingly does not run, and why: each is recorded in
# `ProvisionResult.not_emulated` (and listed by `local up`) instead of being dropped silently.
NOT_EMULATED_REASONS: Final = {
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::Lambda::Permission": "IAM is not enforced locally",
    "AWS::SNS::TopicPolicy": "IAM is not enforced locally",
    "AWS::SQS::QueuePolicy": "IAM is not enforced locally",
    "AWS::KMS::Key": "no encryption locally",
    "AWS::KMS::Alias": "no encryption locally",
    "AWS::CloudWatch::Alarm": "no CloudWatch metrics locally",
    "AWS::CloudWatch::Dashboard": "no CloudWatch metrics locally",
    "AWS::Logs::LogGroup": "workers log to the state directory's logs/",
    "AWS::SNS::Subscription": "nothing is e-mailed locally",
    "AWS::Events::Rule": "moto does not deliver EventBridge events to SNS targets "
    "(low-stock events stop at the bus)",
}
NOT_EMULATED: Final = frozenset(NOT_EMULATED_REASONS)

SqlCheck = Callable[[str], None]
Attributes = dict[str, Any]


class ProvisionError(TemplateError):
    """A resource cannot be created locally as the template describes it."""


# --------------------------------------------------------------------------------------------
# Clients and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsClients:
    """boto3 clients pointed at the moto server."""

    dynamodb: DynamoDBClient
    sqs: SQSClient
    sns: SNSClient
    iot: IoTClient
    events: Any = None
    s3: Any = None

    @classmethod
    def for_endpoint(cls, endpoint_url: str, region: str) -> AwsClients:
        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            region_name=region,
        )
        config = Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 2})
        return cls(
            dynamodb=session.client("dynamodb", endpoint_url=endpoint_url, config=config),
            sqs=session.client("sqs", endpoint_url=endpoint_url, config=config),
            sns=session.client("sns", endpoint_url=endpoint_url, config=config),
            iot=session.client("iot", endpoint_url=endpoint_url, config=config),
            events=session.client("events", endpoint_url=endpoint_url, config=config),
            s3=session.client("s3", endpoint_url=endpoint_url, config=config),
        )


@dataclass
class ProvisionResult:
    """What was created, and the specs for the processes that emulate the rest."""

    resources: dict[str, str] = field(default_factory=dict)
    physical: dict[str, Attributes] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    not_emulated: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # resources whose Condition is false
    apis: dict[str, dict[str, Any]] = field(default_factory=dict)  # HttpApi -> gateway spec


@dataclass
class _Context:
    template: Template
    clients: AwsClients
    resolver: Resolver
    region: str
    endpoint_url: str
    stack_name: str
    sql_check: SqlCheck
    result: ProvisionResult
    layer_paths: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)
    function_arns: dict[str, str] = field(default_factory=dict)
    schedule_seconds: dict[str, float] = field(default_factory=dict)

    def default_name(self, resource: Resource, separator: str = "-") -> str:
        return f"{self.stack_name}{separator}{resource.logical_id}"

    def arn(self, service: str, resource_path: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{DEFAULT_ACCOUNT_ID}:{resource_path}"


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def local_parameters(template: Template, overrides: Mapping[str, str] | None) -> dict[str, Any]:
    """Parameter values for the local stack: `Stage=local`, then the caller's overrides."""
    defaults = {k: v for k, v in LOCAL_PARAMETER_DEFAULTS.items() if k in template.parameters}
    return parameter_values(template, {**defaults, **(overrides or {})})


def provision(
    template: Template,
    clients: AwsClients,
    *,
    endpoint_url: str,
    region: str = DEFAULT_REGION,
    stack_name: str = DEFAULT_STACK_NAME,
    param_overrides: Mapping[str, str] | None = None,
    sql_check: SqlCheck | None = None,
    schedule_seconds: Mapping[str, float] | None = None,
) -> ProvisionResult:
    """Create every resource of `template` in moto and build the worker and bridge specs.

    `schedule_seconds` (function logical id -> seconds) is local-only: it runs that function's
    schedules at this period instead of the template's rate, which EventBridge (and so the
    template) cannot make shorter than a minute. Tests and the demo use it to sweep quickly.
    """
    check_supported(template)
    check_schedule_overrides(template, schedule_seconds or {})
    physical: dict[str, Attributes] = {}
    context = _Context(
        template=template,
        clients=clients,
        resolver=Resolver(
            local_parameters(template, param_overrides),
            pseudo_parameters(region, stack_name),
            physical,
            conditions=template.conditions,
            mappings=template.mappings,
        ),
        region=region,
        endpoint_url=endpoint_url,
        stack_name=stack_name,
        sql_check=sql_check or check_rule_sql,
        result=ProvisionResult(physical=physical),
        schedule_seconds=dict(schedule_seconds or {}),
    )
    for resource in dependency_order(template):
        _provision_one(context, resource)
    return context.result


def check_supported(template: Template) -> None:
    """Fail before creating anything if a resource type has no local emulation."""
    unsupported = [
        f"{r.logical_id} ({r.type})"
        for r in template.resources.values()
        if r.type not in _PROVISIONERS and r.type not in NOT_EMULATED
    ]
    if unsupported:
        raise ProvisionError(
            "resource type not supported by the local stack: " + ", ".join(unsupported)
        )


def check_schedule_overrides(template: Template, schedule_seconds: Mapping[str, float]) -> None:
    """Each override must name a template function with a schedule, and a positive period."""
    scheduled = {
        r.logical_id
        for r in template.resources.values()
        if r.type == "AWS::Serverless::Function"
        and any(
            isinstance(e, dict) and e.get("Type") == "Schedule"
            for e in (r.properties.get("Events") or {}).values()
        )
    }
    unknown = sorted(set(schedule_seconds) - scheduled)
    if unknown:
        raise ProvisionError(
            f"schedule override for {unknown}: not a scheduled function "
            f"(scheduled functions: {sorted(scheduled)})"
        )
    invalid = sorted(name for name, seconds in schedule_seconds.items() if not seconds > 0)
    if invalid:
        raise ProvisionError(f"schedule override for {invalid}: the period must be > 0 seconds")


def _provision_one(context: _Context, resource: Resource) -> None:
    if resource.condition and not context.resolver.condition(resource.condition):
        log.info("skipped %s: condition %s is false", resource.logical_id, resource.condition)
        context.result.skipped.append(resource.logical_id)
        return
    if resource.type in NOT_EMULATED:
        context.result.physical[resource.logical_id] = _placeholder(context, resource)
        context.result.not_emulated.append(
            {
                "logical_id": resource.logical_id,
                "type": resource.type,
                "reason": NOT_EMULATED_REASONS[resource.type],
            }
        )
        return
    try:
        attributes = _PROVISIONERS[resource.type](context, resource)
    except (TemplateError, ClientError, ParamValidationError) as exc:
        raise ProvisionError(f"{resource.logical_id} ({resource.type}): {exc}") from exc
    context.result.physical[resource.logical_id] = attributes
    context.result.resources[resource.logical_id] = str(attributes["Ref"])


def _check_properties(
    resource: Resource, applied: Iterable[str], ignored: Iterable[str] = ()
) -> None:
    unknown = sorted(set(resource.properties) - set(applied) - set(ignored))
    if unknown:
        raise ProvisionError(f"property {unknown} is not supported locally")


def _optional_str(context: _Context, properties: Mapping[str, Any], key: str) -> str | None:
    if key not in properties:
        return None
    return context.resolver.resolve_str(properties[key], key)


# --------------------------------------------------------------------------------------------
# Not emulated: only placeholders so that references to them still resolve
# --------------------------------------------------------------------------------------------

_PLACEHOLDER_NAME_PROPERTY: Final = {
    "AWS::IAM::Role": "RoleName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Events::Rule": "Name",
}


def _placeholder(context: _Context, resource: Resource) -> Attributes:
    name_property = _PLACEHOLDER_NAME_PROPERTY.get(resource.type, "")
    name = _optional_str(context, resource.properties, name_property) or context.default_name(
        resource
    )
    arns = {
        "AWS::IAM::Role": context.arn("iam", f"role/{name}", regional=False),
        "AWS::CloudWatch::Alarm": context.arn("cloudwatch", f"alarm:{name}"),
        "AWS::Logs::LogGroup": context.arn("logs", f"log-group:{name}:*"),
        "AWS::KMS::Key": context.arn("kms", f"key/{name}"),
        "AWS::Events::Rule": context.arn("events", f"rule/{name}"),
    }
    attributes: Attributes = {"Ref": name}
    if resource.type in arns:
        attributes["Arn"] = arns[resource.type]
    return attributes


# --------------------------------------------------------------------------------------------
# DynamoDB
# --------------------------------------------------------------------------------------------

_TABLE_APPLIED: Final = frozenset(
    {
        "TableName",
        "KeySchema",
        "AttributeDefinitions",
        "BillingMode",
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "StreamSpecification",
        "SSESpecification",
        "TimeToLiveSpecification",
        "PointInTimeRecoverySpecification",
        "TableClass",
        "DeletionProtectionEnabled",
        "Tags",
    }
)
# No local behaviour: metrics, resource policies, capacity hints.
_TABLE_IGNORED: Final = frozenset(
    {"ContributorInsightsSpecification", "ResourcePolicy", "OnDemandThroughput", "WarmThroughput"}
)
_INDEX_IGNORED: Final = ("ContributorInsightsSpecification",)


def create_table_request(properties: Mapping[str, Any], default_name: str) -> dict[str, Any]:
    """The `CreateTable` request for resolved `AWS::DynamoDB::Table` properties."""
    request: dict[str, Any] = {
        "TableName": properties.get("TableName", default_name),
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for key in ("ProvisionedThroughput", "TableClass", "DeletionProtectionEnabled", "Tags"):
        if key in properties:
            request[key] = properties[key]
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in properties:
            request[key] = [_without(index, _INDEX_IGNORED) for index in properties[key]]
    if "StreamSpecification" in properties:
        view_type = properties["StreamSpecification"]["StreamViewType"]
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view_type}
    if "SSESpecification" in properties:
        request["SSESpecification"] = _sse_request(properties["SSESpecification"])
    return request


def _sse_request(sse: Mapping[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"Enabled": bool(sse.get("SSEEnabled", False))}
    if "SSEType" in sse:
        request["SSEType"] = sse["SSEType"]
    if "KMSMasterKeyId" in sse:
        request["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    return request


def _without(mapping: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in set(keys)}


def _provision_table(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, _TABLE_APPLIED, _TABLE_IGNORED)
    properties = context.resolver.resolve(resource.properties)
    request = create_table_request(properties, context.default_name(resource))
    description = context.clients.dynamodb.create_table(**request)["TableDescription"]
    name = request["TableName"]
    _apply_ttl(context, name, properties.get("TimeToLiveSpecification"))
    pitr = properties.get("PointInTimeRecoverySpecification")
    if pitr and pitr.get("PointInTimeRecoveryEnabled"):
        context.clients.dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification=pitr
        )
    log.info("created DynamoDB table %s", name)
    attributes: Attributes = {"Ref": name, "Arn": description["TableArn"]}
    if "LatestStreamArn" in description:
        attributes["StreamArn"] = description["LatestStreamArn"]
    return attributes


def _apply_ttl(context: _Context, table: str, ttl: Mapping[str, Any] | None) -> None:
    if not ttl or not ttl.get("Enabled"):
        return
    context.clients.dynamodb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
    )


# --------------------------------------------------------------------------------------------
# SQS
# --------------------------------------------------------------------------------------------

_QUEUE_ATTRIBUTES: Final = frozenset(
    {
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "SqsManagedSseEnabled",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
    }
)


def queue_attributes(properties: Mapping[str, Any]) -> dict[str, str]:
    """`CreateQueue` attributes for resolved `AWS::SQS::Queue` properties (strings, JSON)."""
    attributes: dict[str, str] = {}
    for key in sorted(_QUEUE_ATTRIBUTES & set(properties)):
        value = properties[key]
        if key == "FifoQueue" and not value:
            continue  # SQS rejects FifoQueue=false; a standard queue simply omits it
        attributes[key] = _attribute_string(value)
    return attributes


def _attribute_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _provision_queue(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, _QUEUE_ATTRIBUTES | {"QueueName", "Tags"})
    properties = context.resolver.resolve(resource.properties)
    fifo = bool(properties.get("FifoQueue"))
    name = properties.get("QueueName") or (
        context.default_name(resource) + (".fifo" if fifo else "")
    )
    tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}
    url = context.clients.sqs.create_queue(
        QueueName=name,
        Attributes=cast("dict[QueueAttributeNameType, str]", queue_attributes(properties)),
        tags=tags,
    )["QueueUrl"]
    arn = context.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    context.queue_urls[arn] = url
    log.info("created SQS queue %s", name)
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


# --------------------------------------------------------------------------------------------
# SNS
# --------------------------------------------------------------------------------------------

_TOPIC_ATTRIBUTES: Final = frozenset(
    {
        "DisplayName",
        "KmsMasterKeyId",
        "FifoTopic",
        "ContentBasedDeduplication",
        "SignatureVersion",
        "TracingConfig",
        "ArchivePolicy",
        "DeliveryPolicy",
    }
)


def _provision_topic(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, _TOPIC_ATTRIBUTES | {"TopicName", "Tags", "Subscription"})
    properties = context.resolver.resolve(resource.properties)
    fifo = bool(properties.get("FifoTopic"))
    name = properties.get("TopicName") or (
        context.default_name(resource) + (".fifo" if fifo else "")
    )
    attributes = {
        key: _attribute_string(properties[key])
        for key in sorted(_TOPIC_ATTRIBUTES & set(properties))
        if not (key == "FifoTopic" and not properties[key])
    }
    arn = context.clients.sns.create_topic(
        Name=name, Attributes=attributes, Tags=properties.get("Tags", [])
    )["TopicArn"]
    for subscription in properties.get("Subscription", []):
        context.clients.sns.subscribe(
            TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
        )
    log.info("created SNS topic %s", name)
    return {"Ref": arn, "TopicArn": arn, "TopicName": name}


# --------------------------------------------------------------------------------------------
# IoT policy and topic rule
# --------------------------------------------------------------------------------------------


def _provision_iot_policy(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, {"PolicyName", "PolicyDocument"}, {"Tags"})
    properties = context.resolver.resolve(resource.properties)
    name = properties.get("PolicyName") or context.default_name(resource)
    document = properties["PolicyDocument"]
    text = document if isinstance(document, str) else json.dumps(document)
    arn = context.clients.iot.create_policy(policyName=name, policyDocument=text)["policyArn"]
    log.info("created IoT policy %s", name)
    return {"Ref": name, "Arn": arn, "Id": name}


_RULE_SQL_VERSIONS: Final = frozenset({"2015-10-08", "2016-03-23"})
_RULE_PAYLOAD_KEYS: Final = frozenset(
    {"Sql", "Description", "RuleDisabled", "AwsIotSqlVersion", "Actions", "ErrorAction"}
)


def check_rule_sql(sql: str) -> None:
    """Ask the IoT-rule bridge whether it can evaluate `sql` (raises ProvisionError if not)."""
    try:
        parse_sql(sql)
    except UnsupportedRuleSql as exc:
        raise ProvisionError(f"rule SQL not supported by the local bridge: {exc}") from exc


def _provision_topic_rule(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, {"RuleName", "TopicRulePayload"}, {"Tags"})
    properties = context.resolver.resolve(resource.properties)
    name = properties.get("RuleName") or re.sub(r"\W", "_", context.default_name(resource, "_"))
    payload = properties["TopicRulePayload"]
    _check_rule_payload(payload)
    context.sql_check(payload["Sql"])
    actions = [_rule_action(context, action) for action in payload["Actions"]]
    error = payload.get("ErrorAction")
    error_action = _rule_action(context, error) if error else None
    context.clients.iot.create_topic_rule(ruleName=name, topicRulePayload=_api_payload(payload))
    if payload.get("RuleDisabled"):
        log.info("created IoT topic rule %s (disabled: not bridged)", name)
    else:
        context.result.rules.append(
            {"name": name, "sql": payload["Sql"], "actions": actions, "error_action": error_action}
        )
        log.info("created IoT topic rule %s", name)
    return {"Ref": name, "Arn": context.arn("iot", f"rule/{name}")}


def _check_rule_payload(payload: Mapping[str, Any]) -> None:
    unknown = sorted(set(payload) - _RULE_PAYLOAD_KEYS)
    if unknown:
        raise ProvisionError(f"TopicRulePayload property {unknown} is not supported locally")
    version = payload.get("AwsIotSqlVersion", "2015-10-08")
    if version not in _RULE_SQL_VERSIONS:
        raise ProvisionError(f"AwsIotSqlVersion {version!r} is not supported locally")


def _rule_action(context: _Context, action: Mapping[str, Any]) -> dict[str, Any]:
    if len(action) != 1 or next(iter(action)) not in ("Sqs", "Lambda"):
        raise ProvisionError(
            f"topic rule action {sorted(action)} is not supported locally (only Sqs, Lambda)"
        )
    if "Sqs" in action:
        sqs = action["Sqs"]
        return {
            "type": "sqs",
            "queue_url": sqs["QueueUrl"],
            "use_base64": bool(sqs.get("UseBase64", False)),
        }
    function_arn = action["Lambda"]["FunctionArn"]
    logical_id = context.function_arns.get(function_arn)
    if logical_id is None:
        raise ProvisionError(f"Lambda action target {function_arn} is not a template function")
    # The worker's invoke URL is known once it runs: see `bind_invoke_urls`.
    return {
        "type": "lambda",
        "invoke_url": None,
        "function": logical_id,
        "function_arn": function_arn,
    }


def _api_payload(payload: Mapping[str, Any]) -> TopicRulePayloadTypeDef:
    """The IoT API's camelCase `topicRulePayload` for resolved CloudFormation properties."""
    api: dict[str, Any] = {
        "sql": payload["Sql"],
        "actions": [_camel_keys(action) for action in payload["Actions"]],
        "ruleDisabled": bool(payload.get("RuleDisabled", False)),
        "awsIotSqlVersion": payload.get("AwsIotSqlVersion", "2015-10-08"),
    }
    if "Description" in payload:
        api["description"] = payload["Description"]
    if payload.get("ErrorAction"):
        api["errorAction"] = _camel_keys(payload["ErrorAction"])
    return cast("TopicRulePayloadTypeDef", api)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: _camel_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_camel_keys(item) for item in value]
    return value


def bind_invoke_urls(
    rules: list[dict[str, Any]], invoke_urls: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The bridge's rule entries, with each Lambda action pointing at its worker's URL."""
    return [
        {
            **rule,
            "actions": [_bound(action, invoke_urls) for action in rule["actions"]],
            "error_action": _bound(rule["error_action"], invoke_urls)
            if rule["error_action"]
            else None,
        }
        for rule in rules
    ]


def _bound(action: dict[str, Any], invoke_urls: Mapping[str, str]) -> dict[str, Any]:
    if action["type"] != "lambda":
        return action
    return {
        "type": "lambda",
        "invoke_url": invoke_urls[action["function"]],
        "function_arn": action["function_arn"],
    }


# --------------------------------------------------------------------------------------------
# Serverless layers and functions
# --------------------------------------------------------------------------------------------

_LAYER_IGNORED: Final = frozenset(
    {
        "Description",
        "CompatibleRuntimes",
        "CompatibleArchitectures",
        "LicenseInfo",
        "RetentionPolicy",
        "PublishLambdaVersion",
    }
)


def _local_dir(context: _Context, uri: Any, what: str) -> Path:
    if not isinstance(uri, str):
        raise ProvisionError(f"{what} must be a local directory, got {uri!r}")
    path = (context.template.root / uri).resolve()
    if not path.is_dir():
        raise ProvisionError(f"{what} {uri!r}: no such directory {path}")
    return path


def _provision_layer(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, {"LayerName", "ContentUri"}, _LAYER_IGNORED)
    properties = context.resolver.resolve(resource.properties)
    name = properties.get("LayerName") or resource.logical_id
    path = _local_dir(context, properties.get("ContentUri"), "ContentUri")
    arn = context.arn("lambda", f"layer:{name}:1")
    context.layer_paths[arn] = str(path)
    log.info("layer %s from %s", name, path)
    return {"Ref": arn, "Arn": arn}


_FUNCTION_APPLIED: Final = frozenset(
    {
        "FunctionName",
        "CodeUri",
        "Handler",
        "Runtime",
        "Timeout",
        "MemorySize",
        "Layers",
        "Environment",
        "Events",
    }
)
# IAM, observability, deployment and capacity settings: no local behaviour to emulate.
_FUNCTION_IGNORED: Final = frozenset(
    {
        "Description",
        "Policies",
        "Role",
        "RolePath",
        "PermissionsBoundary",
        "AssumeRolePolicyDocument",
        "Tracing",
        "Architectures",
        "ReservedConcurrentExecutions",
        "ProvisionedConcurrencyConfig",
        "AutoPublishAlias",
        "AutoPublishCodeSha256",
        "DeploymentPreference",
        "VersionDescription",
        "Tags",
        "PropagateTags",
        "KmsKeyArn",
        "VpcConfig",
        "LoggingConfig",
        "RuntimeManagementConfig",
        "EphemeralStorage",
        "CodeSigningConfigArn",
        "SnapStart",
        "RecursiveLoop",
    }
)


def _provision_function(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, _FUNCTION_APPLIED, _FUNCTION_IGNORED)
    properties = resource.properties
    resolver = context.resolver
    name = _optional_str(context, properties, "FunctionName") or context.default_name(resource)
    runtime = _optional_str(context, properties, "Runtime") or ""
    if not runtime.startswith("python"):
        raise ProvisionError(f"Runtime {runtime!r} cannot run locally (python only)")
    arn = context.arn("lambda", f"function:{name}")
    sqs_sources, schedule_sources, stream_sources = _event_sources(
        context, properties.get("Events") or {}
    )
    override = context.schedule_seconds.get(resource.logical_id)
    if override is not None:
        log.info("function %s: schedules every %ss (local override)", name, override)
        schedule_sources = [{**source, "rate_seconds": override} for source in schedule_sources]
    context.result.workers[resource.logical_id] = {
        "logical_id": resource.logical_id,
        "function_name": name,
        "code_uri": str(
            _local_dir(context, resolver.resolve(properties.get("CodeUri")), "CodeUri")
        ),
        "layer_paths": _layer_paths(context, resolver.resolve(properties.get("Layers", []))),
        "handler": _handler(context, properties),
        "environment": _environment(context, properties.get("Environment") or {}),
        "timeout": int(resolver.resolve_str(properties.get("Timeout", 3), "Timeout")),
        "memory_size": int(resolver.resolve_str(properties.get("MemorySize", 128), "MemorySize")),
        "region": context.region,
        "aws_endpoint_url": context.endpoint_url,
        "sqs_sources": sqs_sources,
        "schedule_sources": schedule_sources,
        "stream_sources": stream_sources,
        "invoke_host": "127.0.0.1",
        "invoke_port": 0,
    }
    context.function_arns[arn] = resource.logical_id
    log.info("function %s -> worker spec", name)
    return {"Ref": name, "Arn": arn}


def _handler(context: _Context, properties: Mapping[str, Any]) -> str:
    handler = _optional_str(context, properties, "Handler")
    if not handler or "." not in handler:
        raise ProvisionError(f"Handler must be 'module.function', got {handler!r}")
    return handler


def _layer_paths(context: _Context, layers: Any) -> list[str]:
    paths = []
    for arn in layers:
        if arn not in context.layer_paths:
            raise ProvisionError(f"layer {arn} is not an AWS::Serverless::LayerVersion here")
        paths.append(context.layer_paths[arn])
    return paths


def _environment(context: _Context, environment: Mapping[str, Any]) -> dict[str, str]:
    unknown = sorted(set(environment) - {"Variables"})
    if unknown:
        raise ProvisionError(f"Environment property {unknown} is not supported locally")
    variables = environment.get("Variables") or {}
    return {
        key: context.resolver.resolve_str(value, f"environment variable {key}")
        for key, value in variables.items()
    }


# --------------------------------------------------------------------------------------------
# Function event sources
# --------------------------------------------------------------------------------------------

_SQS_EVENT_APPLIED: Final = frozenset(
    {"Queue", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "Enabled"}
)
_SQS_EVENT_IGNORED: Final = frozenset({"ScalingConfig", "MetricsConfig", "KmsKeyArn"})
_SCHEDULE_EVENT_APPLIED: Final = frozenset({"Schedule", "Enabled", "State"})
_SCHEDULE_EVENT_IGNORED: Final = frozenset({"Name", "Description"})
_DYNAMODB_EVENT_APPLIED: Final = frozenset(
    {
        "Stream",
        "StartingPosition",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes",
        "MaximumRetryAttempts",
        "BisectBatchOnFunctionError",
        "FilterCriteria",
        "DestinationConfig",
        "Enabled",
    }
)
# Local streams keep records as long as the poller needs them: no record age to enforce.
_DYNAMODB_EVENT_IGNORED: Final = frozenset(
    {"MetricsConfig", "KmsKeyArn", "MaximumRecordAgeInSeconds"}
)
_RATE = re.compile(r"rate\(\s*(\d+)\s+(second|minute|hour|day)s?\s*\)")
_RATE_UNITS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def _event_sources(
    context: _Context, events: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    sqs: list[dict[str, Any]] = []
    schedules: list[dict[str, Any]] = []
    streams: list[dict[str, Any]] = []
    for event_id, event in events.items():
        kind = event.get("Type")
        properties = context.resolver.resolve(event.get("Properties") or {})
        _check_event_properties(event_id, kind, properties)
        if not _event_enabled(properties):
            log.info("event %s is disabled: not polled locally", event_id)
        elif kind == "HttpApi":
            continue  # a route of the local API gateway (infra.local.provision_api)
        elif kind == "SQS":
            sqs.append(_sqs_source(context, event_id, properties))
        elif kind == "DynamoDB":
            streams.append(_stream_source(context, event_id, properties))
        else:
            schedules.append(_schedule_source(event_id, properties))
    return sqs, schedules, streams


def _check_event_properties(event_id: str, kind: Any, properties: Mapping[str, Any]) -> None:
    known = {
        "SQS": (_SQS_EVENT_APPLIED, _SQS_EVENT_IGNORED),
        "Schedule": (_SCHEDULE_EVENT_APPLIED, _SCHEDULE_EVENT_IGNORED),
        "DynamoDB": (_DYNAMODB_EVENT_APPLIED, _DYNAMODB_EVENT_IGNORED),
        "HttpApi": (HTTP_API_EVENT_APPLIED, HTTP_API_EVENT_IGNORED),
    }
    if kind not in known:
        raise ProvisionError(
            f"event {event_id}: event type {kind!r} is not supported locally "
            "(only SQS, Schedule, DynamoDB)"
        )
    applied, ignored = known[kind]
    unknown = sorted(set(properties) - applied - ignored)
    if unknown:
        raise ProvisionError(f"event {event_id} ({kind}): property {unknown} not supported locally")


def _event_enabled(properties: Mapping[str, Any]) -> bool:
    return (
        properties.get("Enabled", True) not in (False, "false")
        and properties.get("State", "ENABLED") != "DISABLED"
    )


def _sqs_source(context: _Context, event_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    queue_arn = properties["Queue"]
    queue_url = context.queue_urls.get(queue_arn)
    if queue_url is None:
        raise ProvisionError(f"event {event_id}: queue {queue_arn} is not created by the template")
    return {
        "event_id": event_id,
        "queue_url": queue_url,
        "queue_arn": queue_arn,
        "batch_size": int(properties.get("BatchSize", 10)),
        "max_batching_window_s": float(properties.get("MaximumBatchingWindowInSeconds", 0)),
        "report_batch_item_failures": "ReportBatchItemFailures"
        in properties.get("FunctionResponseTypes", []),
    }


def _stream_source(
    context: _Context, event_id: str, properties: Mapping[str, Any]
) -> dict[str, Any]:
    """A worker's ``stream_sources`` entry for a SAM ``Type: DynamoDB`` event."""
    stream_arn = properties["Stream"]
    tables = [
        a["Ref"] for a in context.result.physical.values() if a.get("StreamArn") == stream_arn
    ]
    if not tables:
        raise ProvisionError(
            f"event {event_id}: stream {stream_arn} is not the stream of a template table"
        )
    position = properties.get("StartingPosition")
    if position not in ("LATEST", "TRIM_HORIZON"):
        raise ProvisionError(
            f"event {event_id}: StartingPosition {position!r} (LATEST or TRIM_HORIZON locally)"
        )
    return {
        "event_id": event_id,
        "stream_arn": stream_arn,
        "table_name": tables[0],
        "batch_size": int(properties.get("BatchSize", 100)),
        "starting_position": position,
        "max_batching_window_s": float(properties.get("MaximumBatchingWindowInSeconds", 0)),
        "report_batch_item_failures": _reports_item_failures(event_id, properties),
        "maximum_retry_attempts": int(properties.get("MaximumRetryAttempts", -1)),
        "bisect_batch_on_function_error": properties.get("BisectBatchOnFunctionError", False)
        in (True, "true"),
        "filter_patterns": _filter_patterns(event_id, properties.get("FilterCriteria")),
        "on_failure_destination": _on_failure_destination(
            context, event_id, properties.get("DestinationConfig")
        ),
    }


def _reports_item_failures(event_id: str, properties: Mapping[str, Any]) -> bool:
    types = properties.get("FunctionResponseTypes", [])
    unknown = sorted(set(types) - {"ReportBatchItemFailures"})
    if unknown:
        raise ProvisionError(f"event {event_id}: FunctionResponseTypes {unknown} not supported")
    return "ReportBatchItemFailures" in types


def _filter_patterns(event_id: str, criteria: Any) -> list[dict[str, Any]]:
    from infra.local.event_filter import check_pattern

    if not criteria:
        return []
    unknown = sorted(set(criteria) - {"Filters"})
    if unknown:
        raise ProvisionError(f"event {event_id}: FilterCriteria property {unknown} not supported")
    patterns = []
    for entry in criteria.get("Filters") or []:
        try:
            pattern = entry["Pattern"]
            pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
            check_pattern(pattern)
        except (KeyError, TypeError, ValueError) as exc:  # FilterPatternError is a ValueError
            raise ProvisionError(f"event {event_id}: invalid filter {entry!r}: {exc!r}") from exc
        patterns.append(pattern)
    return patterns


def _on_failure_destination(context: _Context, event_id: str, config: Any) -> dict[str, Any] | None:
    if not config:
        return None
    unknown = sorted(set(config) - {"OnFailure"})
    on_failure = config.get("OnFailure") or {}
    unknown += sorted(f"OnFailure.{key}" for key in set(on_failure) - {"Destination", "Type"})
    if unknown:
        raise ProvisionError(
            f"event {event_id}: DestinationConfig property {unknown} not supported"
        )
    destination = on_failure.get("Destination")
    queue_url = context.queue_urls.get(destination) if isinstance(destination, str) else None
    if queue_url is None or on_failure.get("Type", "SQS") != "SQS":
        raise ProvisionError(
            f"event {event_id}: on-failure destination {destination!r} is not a template SQS "
            "queue (only SQS destinations are emulated locally)"
        )
    return {"type": "sqs", "queue_url": queue_url}


def _schedule_source(event_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "rate_seconds": rate_seconds(str(properties["Schedule"]))}


def rate_seconds(expression: str) -> int:
    """Seconds between runs for `rate(N unit)`; cron expressions are refused."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        raise ProvisionError(
            f"schedule {expression!r} is not supported locally (only rate(N minutes|hours|...))"
        )
    count, unit = match.groups()
    if int(count) < 1:
        raise ProvisionError(f"schedule {expression!r}: the rate must be at least 1")
    return int(count) * _RATE_UNITS[unit]


def _provision_event_bus(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, {"Name"}, {"Tags", "Description"})
    if context.clients.events is None:
        raise ProvisionError(f"{resource.logical_id}: no EventBridge client configured")
    properties = context.resolver.resolve(resource.properties)
    name = properties["Name"]
    arn = context.clients.events.create_event_bus(Name=name)["EventBusArn"]
    log.info("created EventBridge bus %s", name)
    return {"Ref": name, "Name": name, "Arn": arn}


# Applied: the bucket and its name. Encryption, public-access blocking and lifecycle rules are
# AWS's business (moto stores them but nothing locally depends on them).
_BUCKET_IGNORED: Final = frozenset(
    {
        "BucketEncryption",
        "PublicAccessBlockConfiguration",
        "LifecycleConfiguration",
        "VersioningConfiguration",
        "Tags",
    }
)


def _provision_bucket(context: _Context, resource: Resource) -> Attributes:
    _check_properties(resource, {"BucketName"}, _BUCKET_IGNORED)
    if context.clients.s3 is None:
        raise ProvisionError(f"{resource.logical_id}: no S3 client configured")
    name = (
        _optional_str(context, resource.properties, "BucketName")
        or context.default_name(resource).lower()
    )
    context.clients.s3.create_bucket(Bucket=name)
    log.info("created S3 bucket %s", name)
    return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}


_PROVISIONERS: Final[dict[str, Callable[[_Context, Resource], Attributes]]] = {
    "AWS::Events::EventBus": _provision_event_bus,
    "AWS::S3::Bucket": _provision_bucket,
    "AWS::DynamoDB::Table": _provision_table,
    "AWS::SQS::Queue": _provision_queue,
    "AWS::SNS::Topic": _provision_topic,
    "AWS::IoT::Policy": _provision_iot_policy,
    "AWS::IoT::TopicRule": _provision_topic_rule,
    "AWS::Serverless::LayerVersion": _provision_layer,
    "AWS::Serverless::Function": _provision_function,
    "AWS::SES::EmailIdentity": provision_email_identity,
    **API_PROVISIONERS,
}

SUPPORTED_TYPES: Final = frozenset(_PROVISIONERS)
