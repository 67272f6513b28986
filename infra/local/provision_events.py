"""A function's SAM events as its worker's event sources: SQS queues, DynamoDB streams (with
filter criteria and on-failure destinations) and schedules; HTTP API events belong to the
gateways. An event property the local worker cannot honour stops start-up with its name."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Final

from infra.local.provision_api import HTTP_API_EVENT_APPLIED, HTTP_API_EVENT_IGNORED
from infra.local.provision_context import ProvisionError, StackContext

log = logging.getLogger("infra.local.provision")


_SQS_EVENT_APPLIED: Final = frozenset(
    {"Queue", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "Enabled"}
)
_SQS_EVENT_IGNORED: Final = frozenset({"ScalingConfig", "MetricsConfig", "KmsKeyArn"})
_SCHEDULE_EVENT_APPLIED: Final = frozenset({"Schedule", "Enabled", "State"})
_SCHEDULE_EVENT_IGNORED: Final = frozenset({"Name", "Description"})
_DYNAMODB_EVENT_APPLIED: Final = frozenset(
    {
        "Stream",
        "StartingPosition",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes",
        "MaximumRetryAttempts",
        "BisectBatchOnFunctionError",
        "FilterCriteria",
        "DestinationConfig",
        "Enabled",
    }
)
# Local streams keep records as long as the poller needs them: no record age to enforce.
_DYNAMODB_EVENT_IGNORED: Final = frozenset(
    {"MetricsConfig", "KmsKeyArn", "MaximumRecordAgeInSeconds"}
)
_RATE = re.compile(r"rate\(\s*(\d+)\s+(second|minute|hour|day)s?\s*\)")
_RATE_UNITS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def event_sources(
    context: StackContext, events: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    sqs: list[dict[str, Any]] = []
    schedules: list[dict[str, Any]] = []
    streams: list[dict[str, Any]] = []
    for event_id, event in events.items():
        kind = event.get("Type")
        properties = context.resolver.resolve(event.get("Properties") or {})
        _check_event_properties(event_id, kind, properties)
        if not _event_enabled(properties):
            log.info("event %s is disabled: not polled locally", event_id)
        elif kind == "HttpApi":
            continue  # a route of the local API gateway (infra.local.provision_api)
        elif kind == "SQS":
            sqs.append(_sqs_source(context, event_id, properties))
        elif kind == "DynamoDB":
            streams.append(_stream_source(context, event_id, properties))
        else:
            schedules.append(_schedule_source(event_id, properties))
    return sqs, schedules, streams


def _check_event_properties(event_id: str, kind: Any, properties: Mapping[str, Any]) -> None:
    known = {
        "SQS": (_SQS_EVENT_APPLIED, _SQS_EVENT_IGNORED),
        "Schedule": (_SCHEDULE_EVENT_APPLIED, _SCHEDULE_EVENT_IGNORED),
        "DynamoDB": (_DYNAMODB_EVENT_APPLIED, _DYNAMODB_EVENT_IGNORED),
        "HttpApi": (HTTP_API_EVENT_APPLIED, HTTP_API_EVENT_IGNORED),
    }
    if kind not in known:
        raise ProvisionError(
            f"event {event_id}: event type {kind!r} is not supported locally "
            "(only SQS, Schedule, DynamoDB)"
        )
    applied, ignored = known[kind]
    unknown = sorted(set(properties) - applied - ignored)
    if unknown:
        raise ProvisionError(f"event {event_id} ({kind}): property {unknown} not supported locally")


def _event_enabled(properties: Mapping[str, Any]) -> bool:
    return (
        properties.get("Enabled", True) not in (False, "false")
        and properties.get("State", "ENABLED") != "DISABLED"
    )


def _sqs_source(
    context: StackContext, event_id: str, properties: Mapping[str, Any]
) -> dict[str, Any]:
    queue_arn = properties["Queue"]
    queue_url = context.queue_urls.get(queue_arn)
    if queue_url is None:
        raise ProvisionError(f"event {event_id}: queue {queue_arn} is not created by the template")
    return {
        "event_id": event_id,
        "queue_url": queue_url,
        "queue_arn": queue_arn,
        "batch_size": int(properties.get("BatchSize", 10)),
        "max_batching_window_s": float(properties.get("MaximumBatchingWindowInSeconds", 0)),
        "report_batch_item_failures": "ReportBatchItemFailures"
        in properties.get("FunctionResponseTypes", []),
    }


def _stream_source(
    context: StackContext, event_id: str, properties: Mapping[str, Any]
) -> dict[str, Any]:
    """A worker's ``stream_sources`` entry for a SAM ``Type: DynamoDB`` event."""
    stream_arn = properties["Stream"]
    tables = [
        a["Ref"] for a in context.result.physical.values() if a.get("StreamArn") == stream_arn
    ]
    if not tables:
        raise ProvisionError(
            f"event {event_id}: stream {stream_arn} is not the stream of a template table"
        )
    position = properties.get("StartingPosition")
    if position not in ("LATEST", "TRIM_HORIZON"):
        raise ProvisionError(
            f"event {event_id}: StartingPosition {position!r} (LATEST or TRIM_HORIZON locally)"
        )
    return {
        "event_id": event_id,
        "stream_arn": stream_arn,
        "table_name": tables[0],
        "batch_size": int(properties.get("BatchSize", 100)),
        "starting_position": position,
        "max_batching_window_s": float(properties.get("MaximumBatchingWindowInSeconds", 0)),
        "report_batch_item_failures": _reports_item_failures(event_id, properties),
        "maximum_retry_attempts": int(properties.get("MaximumRetryAttempts", -1)),
        "bisect_batch_on_function_error": properties.get("BisectBatchOnFunctionError", False)
        in (True, "true"),
        "filter_patterns": _filter_patterns(event_id, properties.get("FilterCriteria")),
        "on_failure_destination": _on_failure_destination(
            context, event_id, properties.get("DestinationConfig")
        ),
    }


def _reports_item_failures(event_id: str, properties: Mapping[str, Any]) -> bool:
    types = properties.get("FunctionResponseTypes", [])
    unknown = sorted(set(types) - {"ReportBatchItemFailures"})
    if unknown:
        raise ProvisionError(f"event {event_id}: FunctionResponseTypes {unknown} not supported")
    return "ReportBatchItemFailures" in types


def _filter_patterns(event_id: str, criteria: Any) -> list[dict[str, Any]]:
    from infra.local.event_filter import check_pattern

    if not criteria:
        return []
    unknown = sorted(set(criteria) - {"Filters"})
    if unknown:
        raise ProvisionError(f"event {event_id}: FilterCriteria property {unknown} not supported")
    patterns = []
    for entry in criteria.get("Filters") or []:
        try:
            pattern = entry["Pattern"]
            pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
            check_pattern(pattern)
        except (KeyError, TypeError, ValueError) as exc:  # FilterPatternError is a ValueError
            raise ProvisionError(f"event {event_id}: invalid filter {entry!r}: {exc!r}") from exc
        patterns.append(pattern)
    return patterns


def _on_failure_destination(
    context: StackContext, event_id: str, config: Any
) -> dict[str, Any] | None:
    if not config:
        return None
    unknown = sorted(set(config) - {"OnFailure"})
    on_failure = config.get("OnFailure") or {}
    unknown += sorted(f"OnFailure.{key}" for key in set(on_failure) - {"Destination", "Type"})
    if unknown:
        raise ProvisionError(
            f"event {event_id}: DestinationConfig property {unknown} not supported"
        )
    destination = on_failure.get("Destination")
    queue_url = context.queue_urls.get(destination) if isinstance(destination, str) else None
    if queue_url is None or on_failure.get("Type", "SQS") != "SQS":
        raise ProvisionError(
            f"event {event_id}: on-failure destination {destination!r} is not a template SQS "
            "queue (only SQS destinations are emulated locally)"
        )
    return {"type": "sqs", "queue_url": queue_url}


def _schedule_source(event_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "rate_seconds": rate_seconds(str(properties["Schedule"]))}


def rate_seconds(expression: str) -> int:
    """Seconds between runs for `rate(N unit)`; cron expressions are refused."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        raise ProvisionError(
            f"schedule {expression!r} is not supported locally (only rate(N minutes|hours|...))"
        )
    count, unit = match.groups()
    if int(count) < 1:
        raise ProvisionError(f"schedule {expression!r}: the rate must be at least 1")
    return int(count) * _RATE_UNITS[unit]
