"""Which moto server the local stack's clients use per service (infra.local.endpoints)."""

from __future__ import annotations

import boto3
import pytest

from infra.local.endpoints import (
    endpoint_environment,
    endpoint_for,
    endpoint_variable,
    service_endpoints,
)


def test_dedicated_dynamodb_server_serves_dynamodb_and_its_streams() -> None:
    # Given the stack's server URLs
    urls = {"main": "http://127.0.0.1:1", "dynamodb": "http://127.0.0.1:2"}
    # When they are turned into per-service endpoints
    endpoints = service_endpoints(urls)
    # Then both DynamoDB APIs go to the DynamoDB server and nothing else is listed
    assert endpoints == {"dynamodb": urls["dynamodb"], "dynamodbstreams": urls["dynamodb"]}


def test_endpoint_variables_are_the_ones_botocore_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the environment the stack gives its processes
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://main:1")
    for name, value in endpoint_environment(
        {"dynamodb": "http://ddb:2", "dynamodbstreams": "http://ddb:2"}
    ).items():
        monkeypatch.setenv(name, value)
    # When boto3 clients are built without an endpoint (as the functions' adapters are)
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    urls = {s: session.client(s).meta.endpoint_url for s in ("dynamodb", "dynamodbstreams", "sqs")}
    # Then DynamoDB and its streams use their server, the rest the main one
    assert urls == {
        "dynamodb": "http://ddb:2",
        "dynamodbstreams": "http://ddb:2",
        "sqs": "http://main:1",
    }


def test_endpoint_for_falls_back_to_the_main_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(endpoint_variable("dynamodb"), raising=False)
    monkeypatch.setenv(endpoint_variable("dynamodbstreams"), "http://ddb:2")
    assert endpoint_for("dynamodb", "http://main:1") == "http://main:1"
    assert endpoint_for("dynamodbstreams", "http://main:1") == "http://ddb:2"
