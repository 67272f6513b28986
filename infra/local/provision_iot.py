"""Provisioners of the template's IoT policies and topic rules; a rule becomes a spec for the
local rules engine (`infra.local.iotrule`) once its SQL is known to be runnable there."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from infra.local.iot_sql import UnsupportedRuleSql
from infra.local.iot_sql_parser import parse_sql
from infra.local.provision_context import (
    Attributes,
    ProvisionError,
    StackContext,
    check_properties,
)
from infra.local.template import (
    Resource,
)

if TYPE_CHECKING:
    from mypy_boto3_iot.type_defs import TopicRulePayloadTypeDef

log = logging.getLogger("infra.local.provision")


def provision_iot_policy(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, {"PolicyName", "PolicyDocument"}, {"Tags"})
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


def provision_topic_rule(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, {"RuleName", "TopicRulePayload"}, {"Tags"})
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


def _rule_action(context: StackContext, action: Mapping[str, Any]) -> dict[str, Any]:
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
