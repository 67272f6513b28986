"""Where the engineer CLI points: the running local stack, or a deployed stack in AWS.

Both give a `Target` keyed the same way: `resources` maps the template's logical ids to physical
ids (table names, queue URLs, topic ARNs, pool and client ids, policy names), as in the local
state file. In AWS they come from the CloudFormation stack (`aftercare-<stage>` unless
`--stack-name`): `ListStackResources` for the resources, `DescribeStacks` for its Outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

STATE_FILE = "local.json"
STACK_PREFIX = "aftercare-"
IOT_MQTT_PORT = 8883
OUTPUT_SUFFIXES = ("Name", "Url", "Arn", "Id")


class TargetError(RuntimeError):
    """The CLI cannot tell where the stack is."""


def project_root(start: Path | None = None) -> Path:
    """The nearest directory holding template.yaml, from `start` (cwd) upwards."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "template.yaml").is_file():
            return candidate
    return Path(__file__).resolve().parent.parent


def default_state_dir() -> Path:
    return project_root() / ".aftercare"


def read_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / STATE_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise TargetError(
            f"no local stack state at {path}; start one with `aftercare local up`"
        ) from exc


def stack_name_for(stage: str, override: str | None = None) -> str:
    """The deployed stack of a stage: `aftercare-<stage>` (what `sam deploy` is told)."""
    return override or f"{STACK_PREFIX}{stage}"


def physical_ids(summaries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Logical id -> physical id of the stack resources that exist (ListStackResources rows)."""
    return {
        str(row["LogicalResourceId"]): str(row["PhysicalResourceId"])
        for row in summaries
        if row.get("PhysicalResourceId")
        and not str(row.get("ResourceStatus", "")).startswith("DELETE_")
    }


def outputs_of(stack: Mapping[str, Any]) -> dict[str, str]:
    """OutputKey -> OutputValue of one DescribeStacks stack."""
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}


def resources_from(listed: Mapping[str, str], outputs: Mapping[str, str]) -> dict[str, str]:
    """The listed resources, plus `<LogicalId>Name|Url|Arn|Id` outputs for ids not listed.

    The template names every resource an operator needs in its Outputs that way; a stack that
    takes a resource from elsewhere (or an emulator that cannot list every type) still resolves.
    """
    resources = dict(listed)
    for key, value in outputs.items():
        for suffix in OUTPUT_SUFFIXES:
            logical_id = key.removesuffix(suffix)
            if logical_id != key and logical_id not in resources:
                resources[logical_id] = value
    return resources


@dataclass
class Target:
    """Clients and resource names for one stack (local, or deployed when `stack_name` is set)."""

    resources: dict[str, str]
    endpoint_url: str | None = None
    region: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    stack_name: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def is_aws(self) -> bool:
        return self.stack_name is not None

    @property
    def name(self) -> str:
        """What to call this stack in messages and file names."""
        return self.stack_name or "local"

    def client(self, service: str, **overrides: Any) -> Any:
        key = service if not overrides else f"{service}:{sorted(overrides.items())}"
        if key not in self._clients:
            kwargs: dict[str, Any] = {}
            if self.endpoint_url:
                kwargs = {
                    "endpoint_url": self.endpoint_url,
                    "aws_access_key_id": "testing",
                    "aws_secret_access_key": "testing",  # moto's dummy credentials
                }
            kwargs.update(overrides)
            session = boto3.session.Session(region_name=self.region)
            self._clients[key] = session.client(service, **kwargs)  # type: ignore[call-overload]
        return self._clients[key]

    def resource(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id]
        except KeyError as exc:
            raise TargetError(f"the stack {self.name} has no resource {logical_id}") from exc

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError as exc:
            raise TargetError(f"the stack {self.name} has no output {key}") from exc

    @property
    def api_url(self) -> str:
        """The support API's base URL (state file `api_url`, or the `ServiceApiUrl` output)."""
        url = self.outputs.get("ServiceApiUrl") if self.is_aws else self.state.get("api_url")
        if not url:
            raise TargetError(f"the stack {self.name} has no support API (ServiceApi)")
        return str(url)

    def iot_data_host(self) -> str:
        """The account's `iot:Data-ATS` endpoint host (AWS only)."""
        answer = self.client("iot").describe_endpoint(endpointType="iot:Data-ATS")
        return str(answer["endpointAddress"])

    @property
    def mqtt_url(self) -> str:
        """Where devices connect: the account's IoT endpoint, or the local stack's broker."""
        if self.is_aws:
            return f"mqtts://{self.iot_data_host()}:{IOT_MQTT_PORT}"
        url = self.state.get("mqtt_url")
        if not url:
            raise TargetError("the local stack's state file has no mqtt_url")
        return str(url)

    def iot_data_client(self) -> Any:
        """A boto3 `iot-data` client on the account's endpoint (AWS) or the local stand-in."""
        if self.is_aws:
            return self.client("iot-data", endpoint_url=f"https://{self.iot_data_host()}")
        url = self.state.get("iot_data_url")
        if not url:
            raise TargetError("the local stack has no iot-data stand-in (iot_data_url)")
        return self.client("iot-data", endpoint_url=str(url))

    def queue_url(self, logical_id: str) -> str:
        """A queue's URL: the local stack records URLs, a deployed stage is asked by name."""
        value = self.resource(logical_id)
        if value.startswith(("http://", "https://")):
            return value
        return str(self.client("sqs").get_queue_url(QueueName=value)["QueueUrl"])


def resolve_aws_target(
    stage: str, *, stack_name: str | None = None, region: str | None = None
) -> Target:
    """A deployed stack, found through CloudFormation with the AWS credential chain."""
    name = stack_name_for(stage, stack_name)
    target = Target(resources={}, region=region, stack_name=name)
    cloudformation = target.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        where = cloudformation.meta.region_name
        raise TargetError(
            f"cannot use CloudFormation stack {name} in {where}: {message} "
            "(deploy it with `sam deploy`, or pass --stack-name / --aws-region)"
        ) from exc
    pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=name)
    listed = physical_ids(row for page in pages for row in page["StackResourceSummaries"])
    target.outputs = outputs_of(stacks[0])
    target.resources = resources_from(listed, target.outputs)
    return target


def resolve_target(
    *,
    aws: bool,
    stage: str,
    state_dir: Path | None,
    stack_name: str | None = None,
    region: str | None = None,
) -> Target:
    """The local stack from its state file, or (``--aws``) a deployed stage via CloudFormation."""
    if aws:
        return resolve_aws_target(stage, stack_name=stack_name, region=region)
    state = read_state(state_dir or default_state_dir())
    return Target(
        resources=dict(state["resources"]),
        endpoint_url=state["aws_endpoint_url"],
        region=state["region"],
        state=state,
    )
