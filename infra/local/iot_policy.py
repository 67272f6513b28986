"""The template's IoT policy, translated into Mosquitto's ACL file for the local broker.

AWS IoT Core confines a device with the ``DeviceIoTPolicy`` attached to its certificate; the
local broker confines it with ACL ``pattern`` lines generated here from that same policy, so
the two cannot drift apart. The translation:

- ``${iot:Connection.Thing.ThingName}`` -> ``%u`` (the certificate's CN, see ``broker_auth``),
  ``${iot:ClientId}`` -> ``%c``; the broker sets the client id to the username, so both are the
  thing name. A variable must be a whole topic level (Mosquitto substitutes only whole levels).
- ``iot:Publish`` on ``topic/T`` -> ``pattern write T``;
  ``iot:Subscribe`` on ``topicfilter/F`` together with ``iot:Receive`` on ``topic/F`` ->
  ``pattern read F`` (Mosquitto's ``read`` means both: subscribe and receive).
- A trailing ``/*`` (any rest of the topic) -> ``/#``.
- ``iot:Connect`` on ``client/${iot:Connection.Thing.ThingName}`` (or ``client/${iot:ClientId}``),
  optionally conditioned on ``iot:Connection.Thing.IsAttached``, is what the broker's
  certificate settings enforce (client id := certificate CN = thing name); it produces no line.
- Retained publishes are refused by the broker (``retain_available false``), matching a
  policy that grants no ``iot:RetainPublish``.

Anything else (Deny, NotAction/NotResource, other actions such as ``iot:RetainPublish``, other
variables, other conditions, ``*`` or ``?`` inside a topic, a Subscribe without the matching
Receive, a Connect on another client id) raises ``UnmappablePolicy`` naming the construct, so
the local stack refuses to start rather than enforce something else than AWS would.

Internal components get ``user`` sections: the IoT-rule bridge reads what the template's topic
rules select (``FROM '...'``), the iot-data stand-in writes where the functions' IAM policies
allow ``iot:Publish``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from infra.local.basic_ingest import basic_ingest_filter
from infra.local.broker_auth import IOT_DATA, IOT_RULES
from infra.local.iot_sql_parser import parse_sql
from infra.local.template import Resolver, Template, local_parameters, pseudo_parameters

DEVICE_POLICY: Final = "DeviceIoTPolicy"
POLICY_VARIABLES: Final = {
    "${iot:Connection.Thing.ThingName}": "%u",
    "${iot:ClientId}": "%c",
}
# `aftercare smoke` publishes a test fault through the data plane as the operator; in AWS the
# operator's own IAM grants `iot:Publish` on it (README, deploy section), locally the stand-in
# serves every caller, so its ACL also holds what an operator may publish.
OPERATOR_SMOKE_TOPIC: Final = "dt/aftercare/+/fault"
SUPPORTED_ACTIONS: Final = frozenset({"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"})
CONNECT_CONDITION: Final = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
STATEMENT_KEYS: Final = frozenset({"Sid", "Effect", "Action", "Resource", "Condition"})
_ARN: Final = re.compile(r"^arn:aws[a-z-]*:iot:[^:]*:[^:]*:(client|topic|topicfilter)/(.+)$")
_VARIABLE: Final = re.compile(r"\$\{[^}]*\}")


class UnmappablePolicy(ValueError):
    """The policy uses a construct the local broker cannot enforce; the message names it."""


@dataclass(frozen=True, order=True)
class AclLine:
    """One line of Mosquitto's ACL file."""

    keyword: str  # "pattern" or "topic"
    access: str  # "read" or "write"
    topic: str

    def __str__(self) -> str:
        return f"{self.keyword} {self.access} {self.topic}"


def device_acl(policy_document: Mapping[str, Any]) -> list[AclLine]:
    """The ``pattern`` lines that give every device what ``policy_document`` allows a thing."""
    connect: list[str] = []
    publish: list[str] = []
    subscribe: list[str] = []
    receive: list[str] = []
    for number, statement in enumerate(_statements(policy_document), start=1):
        where = f"statement {statement.get('Sid', number)}"
        for action in _actions(statement, where):
            for kind, path in _resources(statement, where):
                if action == "iot:Connect":
                    connect.append(_connect(kind, path, statement, where))
                    continue
                _check_condition(statement, where)
                expected = "topicfilter" if action == "iot:Subscribe" else "topic"
                if kind != expected:
                    raise UnmappablePolicy(f"{where}: {action} on a {kind}/ resource ({path})")
                target = {"iot:Publish": publish, "iot:Subscribe": subscribe}.get(action, receive)
                target.append(_topic(path, where))
    if not connect:
        raise UnmappablePolicy("the policy grants no iot:Connect: no device could connect")
    unpaired = [topic for topic in subscribe if topic not in receive]
    if unpaired:
        raise UnmappablePolicy(
            f"iot:Subscribe on {unpaired[0]} without iot:Receive on the same topics: "
            "Mosquitto's read access grants both or neither"
        )
    lines = {AclLine("pattern", "write", t) for t in publish}
    lines |= {AclLine("pattern", "read", t) for t in subscribe}
    return sorted(lines)


def acl_file_text(device_lines: Iterable[AclLine], users: Mapping[str, Iterable[AclLine]]) -> str:
    """The ACL file: device patterns first (they apply to every user), then one section per user."""
    out = ["# Generated by infra/local/iot_policy.py from template.yaml; do not edit.", ""]
    out += [str(line) for line in device_lines]
    for user, lines in users.items():
        out += ["", f"user {user}", *(str(line) for line in lines)]
    return "\n".join(out) + "\n"


def template_acl(
    template: Template,
    region: str,
    stack_name: str = "aftercare-local",
    parameters: Mapping[str, str] | None = None,
) -> str:
    """The local broker's ACL file for ``template`` (raises ``UnmappablePolicy``), with the local
    stack's parameter values (``Stage=local`` unless ``parameters`` say otherwise)."""
    physical: dict[str, dict[str, str]] = {}
    resolver = Resolver(
        local_parameters(template, parameters),
        pseudo_parameters(region, stack_name),
        physical,
        conditions=template.conditions,
        mappings=template.mappings,
    )
    rules = rule_names(template, resolver)
    # the device policy names its Basic Ingest rules with !Ref: what provisioning will create
    physical.update({logical_id: {"Ref": name} for logical_id, name in rules.items()})
    policy = template.resources.get(DEVICE_POLICY)
    if policy is None or policy.type != "AWS::IoT::Policy":
        raise UnmappablePolicy(f"template has no AWS::IoT::Policy named {DEVICE_POLICY}")
    document = resolver.resolve(policy.properties.get("PolicyDocument"))
    if not isinstance(document, Mapping):
        raise UnmappablePolicy(f"{DEVICE_POLICY}'s PolicyDocument is not an object")
    users = {
        IOT_RULES: sorted(
            {AclLine("topic", "read", f) for f in rule_filters(template)}
            | {AclLine("topic", "read", basic_ingest_filter(name)) for name in rules.values()}
        ),
        IOT_DATA: sorted(
            {AclLine("topic", "write", t) for t in function_publish_topics(template, resolver)}
            | {AclLine("topic", "write", OPERATOR_SMOKE_TOPIC)}
        ),
    }
    try:
        return acl_file_text(device_acl(document), users)
    except UnmappablePolicy as exc:
        raise UnmappablePolicy(f"{DEVICE_POLICY}: {exc}") from exc


def rule_names(template: Template, resolver: Resolver) -> dict[str, str]:
    """The physical names of the template's enabled topic rules, by logical id."""
    names = {}
    for logical_id, resource in template.resources.items():
        if resource.type != "AWS::IoT::TopicRule":
            continue
        payload = resource.properties.get("TopicRulePayload", {})
        if payload.get("RuleDisabled") is True or "RuleName" not in resource.properties:
            continue
        names[logical_id] = str(resolver.resolve(resource.properties["RuleName"]))
    return names


def rule_filters(template: Template) -> list[str]:
    """The topic filters the template's enabled topic rules select from."""
    filters = []
    for resource in template.resources.values():
        if resource.type != "AWS::IoT::TopicRule":
            continue
        payload = resource.properties.get("TopicRulePayload", {})
        if payload.get("RuleDisabled") is True or not isinstance(payload.get("Sql"), str):
            continue
        filters.append(parse_sql(payload["Sql"]).topic_filter)
    return filters


def function_publish_topics(template: Template, resolver: Resolver) -> list[str]:
    """Where the functions' IAM policies let them ``iot:Publish`` (via the iot-data stand-in).

    IAM's ``*`` inside a topic becomes a one-level ``+``: narrower than IAM, which is the safe
    direction for a stand-in that publishes on the functions' behalf.
    """
    topics = []
    for resource in template.resources.values():
        if resource.type != "AWS::Serverless::Function":
            continue
        for statement in _function_statements(resource.properties.get("Policies")):
            actions = statement.get("Action")
            actions = [actions] if isinstance(actions, str) else actions or []
            if "iot:Publish" not in actions or statement.get("Effect") != "Allow":
                continue
            resources = resolver.resolve(statement.get("Resource"))
            for resource_arn in [resources] if isinstance(resources, str) else resources:
                match = _ARN.match(resource_arn)
                if match is None or match.group(1) != "topic":
                    raise UnmappablePolicy(f"{resource.logical_id}: iot:Publish on {resource_arn}")
                topics.append(_iam_topic(match.group(2), resource.logical_id))
    return topics


# ---- internals ----------------------------------------------------------------------------


def _statements(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    statements = document.get("Statement")
    statements = [statements] if isinstance(statements, Mapping) else statements
    if not isinstance(statements, list):
        raise UnmappablePolicy("the policy document has no Statement list")
    for number, statement in enumerate(statements, start=1):
        unknown = sorted(set(statement) - STATEMENT_KEYS)
        if unknown:
            raise UnmappablePolicy(f"statement {number}: {', '.join(unknown)} is not supported")
        if statement.get("Effect") != "Allow":
            raise UnmappablePolicy(
                f"statement {number}: Effect {statement.get('Effect')!r} (only Allow is mapped)"
            )
        yield statement


def _actions(statement: Mapping[str, Any], where: str) -> list[str]:
    actions = statement.get("Action")
    actions = [actions] if isinstance(actions, str) else actions
    if not isinstance(actions, list) or not actions:
        raise UnmappablePolicy(f"{where}: no Action")
    for action in actions:
        if action not in SUPPORTED_ACTIONS:
            raise UnmappablePolicy(f"{where}: action {action} has no local equivalent")
    return actions


def _resources(statement: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    resources = statement.get("Resource")
    resources = [resources] if isinstance(resources, str) else resources
    if not isinstance(resources, list) or not resources:
        raise UnmappablePolicy(f"{where}: no Resource")
    for resource in resources:
        match = _ARN.match(resource) if isinstance(resource, str) else None
        if match is None:
            raise UnmappablePolicy(f"{where}: resource {resource!r} is not an IoT client/topic ARN")
        yield match.group(1), match.group(2)


def _connect(kind: str, path: str, statement: Mapping[str, Any], where: str) -> str:
    if kind != "client" or path not in POLICY_VARIABLES:
        raise UnmappablePolicy(
            f"{where}: iot:Connect on {kind}/{path}: locally a client id is always the "
            "certificate's thing name, so only client/${iot:Connection.Thing.ThingName} "
            "or client/${iot:ClientId} can be enforced"
        )
    condition = statement.get("Condition")
    if condition not in (None, CONNECT_CONDITION):
        raise UnmappablePolicy(f"{where}: condition {condition} has no local equivalent")
    return path


def _check_condition(statement: Mapping[str, Any], where: str) -> None:
    if statement.get("Condition") is not None:
        raise UnmappablePolicy(f"{where}: condition {statement['Condition']} on a topic action")


def _topic(path: str, where: str) -> str:
    levels = path.split("/")
    mapped = []
    for index, level in enumerate(levels):
        if level in POLICY_VARIABLES:
            mapped.append(POLICY_VARIABLES[level])
        elif level == "*" and index == len(levels) - 1:
            mapped.append("#")
        elif _VARIABLE.search(level):
            raise UnmappablePolicy(
                f"{where}: policy variable in {path!r}: only whole levels of "
                f"{' or '.join(POLICY_VARIABLES)} map to Mosquitto's %u/%c"
            )
        elif any(char in level for char in "*?+#"):
            raise UnmappablePolicy(
                f"{where}: wildcard in {path!r}: only a trailing /* (any rest) is mapped"
            )
        else:
            mapped.append(level)
    return "/".join(mapped)


def _iam_topic(path: str, where: str) -> str:
    levels = path.split("/")
    if any(level != "*" and any(c in level for c in "*?+#$") for level in levels):
        raise UnmappablePolicy(f"{where}: iot:Publish on {path!r}: partial-level wildcard")
    last = len(levels) - 1
    return "/".join(
        ("#" if index == last else "+") if level == "*" else level
        for index, level in enumerate(levels)
    )


def _function_statements(policies: Any) -> Iterator[Mapping[str, Any]]:
    """The inline IAM statements among a SAM function's ``Policies`` (templates are skipped)."""
    for policy in [policies] if isinstance(policies, Mapping) else policies or []:
        if not isinstance(policy, Mapping):
            continue
        statements = policy.get("Statement")
        statements = [statements] if isinstance(statements, Mapping) else statements or []
        yield from (s for s in statements if isinstance(s, Mapping))


def write_acl_file(
    path: Path, template: Template, region: str, parameters: Mapping[str, str] | None = None
) -> Path:
    """Generate the ACL file for ``template`` at ``path`` (raises ``UnmappablePolicy``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template_acl(template, region, parameters=parameters), encoding="utf-8")
    return path
