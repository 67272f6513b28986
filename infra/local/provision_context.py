"""What every provisioner of the local stack shares: the clients, the run's context and result,
and the property checks that refuse what the local stack cannot honour."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader

from infra.local.cfn_yaml import TemplateError
from infra.local.template import DEFAULT_ACCOUNT_ID, Resolver, Resource, Template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iot import IoTClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("infra.local.provision")


SqlCheck = Callable[[str], None]
Attributes = dict[str, Any]


class ProvisionError(TemplateError):
    """A resource cannot be created locally as the template describes it."""


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
        def client(service: str) -> Any:
            return moto_client(service, endpoint_url, region)

        return cls(
            dynamodb=client("dynamodb"),
            sqs=client("sqs"),
            sns=client("sns"),
            iot=client("iot"),
            events=client("events"),
            s3=client("s3"),
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
class StackContext:
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


def check_properties(
    resource: Resource, applied: Iterable[str], ignored: Iterable[str] = ()
) -> None:
    unknown = sorted(set(resource.properties) - set(applied) - set(ignored))
    if unknown:
        raise ProvisionError(f"property {unknown} is not supported locally")


def optional_str(context: StackContext, properties: Mapping[str, Any], key: str) -> str | None:
    if key not in properties:
        return None
    return context.resolver.resolve_str(properties[key], key)


@functools.cache
def _service_models() -> Loader:
    """One botocore data loader for every client this process builds: a new session parses each
    service's JSON model again: most of a provisioning run's CPU (and tests provision often)."""
    return create_loader()


def moto_client(service: str, endpoint_url: str | None, region: str) -> Any:
    """A provisioning client of the moto server (of AWS's own endpoint when None, as under
    `mock_aws`): moto's dummy credentials, no account id in the endpoint, two attempts.
    A session of its own (sessions are not thread-safe), sharing the parsed service models."""
    session = botocore.session.Session()
    session.register_component("data_loader", _service_models())
    config = Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 2})
    return session.create_client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        config=config,
    )


def moto_endpoint(other: Any) -> str | None:
    """The endpoint the `other` client uses; None for AWS's own (e.g. under `mock_aws`)."""
    endpoint = str(other.meta.endpoint_url)
    host = urlsplit(endpoint).hostname or ""
    return None if host.endswith(".amazonaws.com") else endpoint
