"""What the benchmark reads from the running stack: the tickets stream, notification attempts,
and the moto server's request statistics. All reads go through the stack's AWS endpoint."""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

MOTO_STATS_PATH = "/_local/stats"
MOTO_SERVICE_NAMES = {"dynamodb": "DynamoDB", "dynamodbstreams": "DynamoDBStreams"}
DIAG_DONE = "completed"


# Requests the benchmark itself sends to moto, by operation: taken off the stack's figures.
OWN_REQUESTS: Counter[str] = Counter()


def aws_client(service: str, state: Mapping[str, Any]) -> Any:
    client = boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=state["aws_endpoint_url"],
        region_name=state["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
    )
    prefix = MOTO_SERVICE_NAMES.get(service, service)
    client.meta.events.register(
        f"after-call.{client.meta.service_model.endpoint_prefix}",
        lambda model, **_: OWN_REQUESTS.update([f"{prefix}.{model.name}"]),
    )
    return client


def moto_stats(state: Mapping[str, Any]) -> dict[str, Any]:
    """The moto servers' totals since start: {uptime_s, operations: {op: {requests, busy_s}}},
    and with dedicated servers `servers: {name: {uptime_s, requests, busy_s}}` (the main one
    answers for all; infra.local.moto_forward)."""
    url = state["aws_endpoint_url"] + MOTO_STATS_PATH
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - the local endpoint
        return dict(json.load(answer))


def stats_delta(
    before: Mapping[str, Any], after: Mapping[str, Any], own: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Requests and busy seconds per operation between two `moto_stats` snapshots, less `own`
    (the benchmark's own requests in between, by operation)."""
    old = before["operations"]
    operations = {}
    served = 0
    for op, now in after["operations"].items():
        was = old.get(op, {"requests": 0, "busy_s": 0.0})
        served += now["requests"] - was["requests"]
        requests = now["requests"] - was["requests"] - (own or {}).get(op, 0)
        if requests:
            operations[op] = {"requests": requests, "busy_s": now["busy_s"] - was["busy_s"]}
    wall = after["uptime_s"] - before["uptime_s"]
    servers = {
        name: {"busy_s": now["busy_s"] - before.get("servers", {}).get(name, {}).get("busy_s", 0.0)}
        for name, now in after.get("servers", {}).items()
    }
    return {"wall_s": wall, "served": served, "operations": operations, "servers": servers}


@dataclass
class TicketEvents:
    """When each ticket and diagnostics request appeared on the tickets stream (write times)."""

    ticket_written: dict[tuple[str, str], float] = field(default_factory=dict)  # (thing, code)
    ticket_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # ticket id -> key
    occurrences: dict[tuple[str, str], int] = field(default_factory=dict)
    diag_requested: dict[str, float] = field(default_factory=dict)  # pk+sk -> time
    diag_done: dict[str, float] = field(default_factory=dict)


class TicketStream:
    """Follows the tickets table's stream from 'now' (moto keeps one shard per table)."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        table = state["resources"]["TicketsTable"]
        self._streams = aws_client("dynamodbstreams", state)
        arn = aws_client("dynamodb", state).describe_table(TableName=table)["Table"][
            "LatestStreamArn"
        ]
        shards = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        self._iterators = [
            self._streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for shard in shards
        ]
        self.events = TicketEvents()

    def poll(self) -> int:
        """Read what is new; returns the number of records read."""
        read = 0
        for index, start in enumerate(self._iterators):
            position = start
            while position:
                answer = self._streams.get_records(ShardIterator=position, Limit=1000)
                records = answer.get("Records", [])
                for record in records:
                    self._take(record["dynamodb"])
                read += len(records)
                position = answer.get("NextShardIterator")
                if not records:
                    break
            self._iterators[index] = position
        return read

    def _take(self, change: Mapping[str, Any]) -> None:
        image = change.get("NewImage") or {}
        at = change["ApproximateCreationDateTime"].timestamp()
        sk = image.get("sk", {}).get("S", "")
        pk = image.get("pk", {}).get("S", "")
        if sk == "META" and "fault_code" in image:
            key = (image["thing"]["S"], image["fault_code"]["S"])
            self.events.ticket_written.setdefault(key, at)
            self.events.ticket_of[pk.removeprefix("TICKET#")] = key
            self.events.occurrences[key] = int(image.get("occurrences", {}).get("N", "1"))
        elif sk.startswith("DIAG#"):
            status = image.get("status", {}).get("S")
            if status == DIAG_DONE:
                self.events.diag_done.setdefault(pk + sk, at)
            else:
                self.events.diag_requested.setdefault(pk + sk, at)


def first_notifications(
    state: Mapping[str, Any], tickets: Mapping[str, tuple[str, str]]
) -> dict[tuple[str, str], float]:
    """Per (thing, code): the time of the first notification attempt sent for its ticket."""
    ddb = aws_client("dynamodb", state)
    table = state["resources"]["NotificationsTable"]
    first: dict[tuple[str, str], float] = {}
    for page in ddb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(sk, :att)",
        ExpressionAttributeValues={":att": {"S": "ATT#"}},
    ):
        for item in page["Items"]:
            key = tickets.get(item.get("ticket_id", {}).get("S", ""))
            if key is None or item.get("status", {}).get("S") != "sent":
                continue
            at = _epoch(item["at"]["S"])
            first[key] = min(at, first.get(key, at))
    return first


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


REPORT_LINE = re.compile(r"REPORT RequestId: \S+ Source: .*? Duration: ([0-9.]+) ms")


def invocation_figures(text: str) -> tuple[int, float]:
    """(invocations, total duration in ms) from a worker log's REPORT lines (as Lambda's)."""
    durations = [float(match.group(1)) for match in REPORT_LINE.finditer(text)]
    return len(durations), sum(durations)


class FunctionLogs:
    """What each worker logged from now on: invocations, their duration, the bytes written."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        self._paths = {lid: Path(info["log"]) for lid, info in state["functions"].items()}
        self._offsets = {lid: _size(path) for lid, path in self._paths.items()}

    def since(self, per: float) -> dict[str, dict[str, float]]:
        figures = {}
        for lid, path in self._paths.items():
            with path.open("rb") as log:
                log.seek(self._offsets[lid])
                text = log.read().decode("utf-8", "replace")
            invocations, total_ms = invocation_figures(text)
            if invocations:
                figures[lid] = {
                    "invocations_per_fault": round(invocations / per, 4),
                    "mean_duration_ms": round(total_ms / invocations, 1),
                    "log_bytes_per_fault": round(len(text.encode()) / per, 1),
                }
        return figures


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
