"""The local moto server counts what it serves, per service and operation, for benchmarks."""

from __future__ import annotations

import json
import os
import urllib.request

import boto3

from infra.local.motoserver import STATS_PATH, SerialMotoServer


def _client(service: str, url: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_stats_count_requests_and_busy_time_per_operation():
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer() as server:
        # Given requests of a JSON-protocol and a query-protocol service
        _client("dynamodb", server.url).list_tables()
        _client("dynamodb", server.url).list_tables()
        _client("sns", server.url).create_topic(Name="t")
        # When the stats are read
        with urllib.request.urlopen(server.url + STATS_PATH) as answer:
            stats = json.load(answer)
    # Then each operation is named with its service, counted, and timed
    operations = stats["operations"]
    assert operations["DynamoDB.ListTables"]["requests"] == 2
    assert operations["SNS.CreateTopic"]["requests"] == 1
    assert operations["DynamoDB.ListTables"]["busy_s"] > 0
    assert stats["uptime_s"] > 0
