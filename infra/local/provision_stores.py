"""Provisioners of the template's stores and channels in moto: DynamoDB tables, SQS queues,
SNS topics, EventBridge buses and S3 buckets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from infra.local.provision_context import (
    Attributes,
    ProvisionError,
    StackContext,
    check_properties,
    optional_str,
)
from infra.local.template import (
    Resource,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

log = logging.getLogger("infra.local.provision")


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


def provision_table(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, _TABLE_APPLIED, _TABLE_IGNORED)
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


def _apply_ttl(context: StackContext, table: str, ttl: Mapping[str, Any] | None) -> None:
    if not ttl or not ttl.get("Enabled"):
        return
    context.clients.dynamodb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
    )


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


def provision_queue(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, _QUEUE_ATTRIBUTES | {"QueueName", "Tags"})
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


def provision_topic(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, _TOPIC_ATTRIBUTES | {"TopicName", "Tags", "Subscription"})
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


def provision_event_bus(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, {"Name"}, {"Tags", "Description"})
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


def provision_bucket(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, {"BucketName"}, _BUCKET_IGNORED)
    if context.clients.s3 is None:
        raise ProvisionError(f"{resource.logical_id}: no S3 client configured")
    name = (
        optional_str(context, resource.properties, "BucketName")
        or context.default_name(resource).lower()
    )
    context.clients.s3.create_bucket(Bucket=name)
    log.info("created S3 bucket %s", name)
    return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
