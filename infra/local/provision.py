"""Create the template's resources in a moto server, from the template's own properties.

Resources are created in dependency order (Ref / GetAtt / Sub / DependsOn edges). Each supported
type has a provisioner that maps the CloudFormation properties onto the matching API call and
returns the attributes `!Ref` / `!GetAtt` see. Functions and topic rules are not run by moto:
they become specs for the worker processes and the IoT-rule bridge.

Every property is either applied, or deliberately ignored because it has no local behaviour
(IAM, tracing, capacity...), or refused: an unknown resource type, property or event type stops
start-up with a message naming the resource, so the local stack never silently drifts from what
the template deploys.

The provisioners live by kind: `provision_stores` (tables, queues, topics, buses, buckets),
`provision_iot` (policies, topic rules), `provision_functions` (layers, functions, their event
sources), `provision_api` (HTTP APIs, Cognito) and `provision_messaging` (SES identities).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final

from botocore.exceptions import ClientError, ParamValidationError

from infra.local.cfn_yaml import TemplateError
from infra.local.provision_api import PROVISIONERS as API_PROVISIONERS
from infra.local.provision_context import (
    Attributes,
    AwsClients,
    ProvisionError,
    ProvisionResult,
    SqlCheck,
    StackContext,
    optional_str,
)
from infra.local.provision_functions import provision_function, provision_layer
from infra.local.provision_iot import check_rule_sql, provision_iot_policy, provision_topic_rule
from infra.local.provision_messaging import provision_email_identity
from infra.local.provision_stores import (
    provision_bucket,
    provision_event_bus,
    provision_queue,
    provision_table,
    provision_topic,
)
from infra.local.template import Resolver, Resource, Template, local_parameters, pseudo_parameters
from infra.local.template_dependencies import dependency_order

log = logging.getLogger(__name__)


DEFAULT_REGION: Final = "us-east-1"
DEFAULT_STACK_NAME: Final = "aftercare-local"

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
    context = StackContext(
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


def _provision_one(context: StackContext, resource: Resource) -> None:
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


_PLACEHOLDER_NAME_PROPERTY: Final = {
    "AWS::IAM::Role": "RoleName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Events::Rule": "Name",
}


def _placeholder(context: StackContext, resource: Resource) -> Attributes:
    name_property = _PLACEHOLDER_NAME_PROPERTY.get(resource.type, "")
    name = optional_str(context, resource.properties, name_property) or context.default_name(
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


_PROVISIONERS: Final[dict[str, Callable[[StackContext, Resource], Attributes]]] = {
    "AWS::Events::EventBus": provision_event_bus,
    "AWS::S3::Bucket": provision_bucket,
    "AWS::DynamoDB::Table": provision_table,
    "AWS::SQS::Queue": provision_queue,
    "AWS::SNS::Topic": provision_topic,
    "AWS::IoT::Policy": provision_iot_policy,
    "AWS::IoT::TopicRule": provision_topic_rule,
    "AWS::Serverless::LayerVersion": provision_layer,
    "AWS::Serverless::Function": provision_function,
    "AWS::SES::EmailIdentity": provision_email_identity,
    **API_PROVISIONERS,
}

SUPPORTED_TYPES: Final = frozenset(_PROVISIONERS)
