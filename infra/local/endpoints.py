"""Which local moto server serves which AWS service: the one place that decides it.

The local stack runs DynamoDB (with its streams) on a moto server of its own, so table reads
and writes stop queueing behind SQS, SNS, IoT and the rest, which share the main server. Each
server still serves one request at a time, so conditional writes and transactions stay atomic:
every DynamoDB request goes to the same server. Services that moto links inside one process
(SNS -> SQS subscriptions, DynamoDB -> its streams) stay on the same server.

The main server (`aws_endpoint_url` in local.json) forwards the dedicated services' requests to
their server, so any client pointed at it alone still sees everything. The stack's own processes
skip that hop: their environment carries botocore's service-specific endpoint variables
(`AWS_ENDPOINT_URL_DYNAMODB`, ...), which boto3 honours for clients built without an explicit
endpoint (the functions' adapters), and which `endpoint_for` applies to the local stand-ins'
clients built with the main endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

# Servers besides the main one: name -> the boto3 service names it serves.
DEDICATED_SERVERS: Final[Mapping[str, tuple[str, ...]]] = {
    "dynamodb": ("dynamodb", "dynamodbstreams"),
}
# botocore's service ids (`AWS_ENDPOINT_URL_<ID>`, spaces as underscores, upper case).
_SERVICE_IDS: Final[Mapping[str, str]] = {
    "dynamodb": "DynamoDB",
    "dynamodbstreams": "DynamoDB Streams",
}
# The X-Amz-Target prefixes of the dedicated services' requests (both use the JSON protocol).
TARGET_PREFIXES: Final[Mapping[str, tuple[str, ...]]] = {
    "dynamodb": ("DynamoDB_", "DynamoDBStreams_"),
}


def endpoint_variable(service: str) -> str:
    """botocore's service-specific endpoint variable, e.g. `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`."""
    service_id = _SERVICE_IDS.get(service, service)
    return "AWS_ENDPOINT_URL_" + service_id.replace(" ", "_").replace("-", "_").upper()


def service_endpoints(server_urls: Mapping[str, str]) -> dict[str, str]:
    """boto3 service name -> URL, for the dedicated servers in `server_urls` (name -> URL)."""
    return {
        service: url
        for server, url in server_urls.items()
        for service in DEDICATED_SERVERS.get(server, ())
    }


def endpoint_environment(endpoints: Mapping[str, str]) -> dict[str, str]:
    """The variables that point boto3 clients of these services at their own server."""
    return {endpoint_variable(service): url for service, url in endpoints.items()}


def endpoint_for(service: str, default: str) -> str:
    """The endpoint a local stand-in uses for `service`: its own server when this process's
    environment names one (the stack sets it), else `default` (the main server)."""
    return os.environ.get(endpoint_variable(service)) or default
