"""The template settings the scale model runs on, read from template.yaml (never copied):
each event source's batch size, batching window and maximum concurrency, each function's
reserved concurrency and memory, each queue's visibility timeout and receive count.
Parameters take their defaults, as a `sam deploy` without overrides would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.local.template import (
    NO_VALUE,
    Resolver,
    Template,
    load_template,
    parameter_values,
    pseudo_parameters,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# What Lambda uses when the template says nothing (Lambda developer guide, event source
# mappings): no batching window, one concurrent batch per stream shard.
DEFAULT_WINDOW_S = 0
DEFAULT_PARALLELIZATION = 1


@dataclass(frozen=True)
class EventSource:
    """One SQS queue or DynamoDB stream a function reads in batches."""

    function: str
    kind: str  # "SQS" | "DynamoDB"
    source: str  # logical id of the queue or table
    batch_size: int
    window_s: int
    max_concurrency: int | None  # SQS ScalingConfig.MaximumConcurrency
    parallelization: int  # DynamoDB streams: concurrent batches per shard


@dataclass(frozen=True)
class Queue:
    logical_id: str
    visibility_timeout_s: int
    max_receive_count: int | None  # None: no redrive policy


@dataclass(frozen=True)
class Function:
    logical_id: str
    memory_mb: int
    reserved_concurrency: int | None
    sources: tuple[EventSource, ...]


@dataclass(frozen=True)
class TemplateSettings:
    functions: dict[str, Function]
    queues: dict[str, Queue]
    parameters: dict[str, Any]  # each parameter's default, as a deploy without overrides

    def source(self, function: str, source: str) -> EventSource:
        """The event source of `function` that reads `source` (a queue or table logical id)."""
        for item in self.functions[function].sources:
            if item.source == source:
                return item
        raise KeyError(f"{function} has no event source reading {source}")


def _resolver(template: Template) -> Resolver:
    return Resolver(
        parameter_values(template, {}),
        pseudo_parameters("us-east-1", "aftercare-scale"),
        {},
        conditions=template.conditions,
        mappings=template.mappings,
    )


def _source_id(reference: Any) -> str:
    """`!GetAtt FaultQueue.Arn` / `!GetAtt TicketsTable.StreamArn` -> the logical id."""
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        return str(reference["Fn::GetAtt"][0])
    raise ValueError(f"event source {reference!r} is not a !GetAtt of a template resource")


def _optional_int(resolve: Resolver, value: Any) -> int | None:
    if value is None:
        return None
    resolved = resolve.resolve(value)
    return None if resolved is NO_VALUE or resolved in ("", None) else int(resolved)


def _event_sources(resolve: Resolver, function: str, events: dict[str, Any]) -> list[EventSource]:
    sources = []
    for event in events.values():
        kind = event.get("Type")
        if kind not in ("SQS", "DynamoDB"):
            continue
        props = event.get("Properties") or {}
        scaling = props.get("ScalingConfig") or {}
        sources.append(
            EventSource(
                function=function,
                kind=kind,
                source=_source_id(props["Queue" if kind == "SQS" else "Stream"]),
                batch_size=int(resolve.resolve(props["BatchSize"])),
                window_s=int(
                    resolve.resolve(props.get("MaximumBatchingWindowInSeconds", DEFAULT_WINDOW_S))
                ),
                max_concurrency=_optional_int(resolve, scaling.get("MaximumConcurrency")),
                parallelization=int(
                    resolve.resolve(props.get("ParallelizationFactor", DEFAULT_PARALLELIZATION))
                ),
            )
        )
    return sources


def read_settings(path: Path = TEMPLATE) -> TemplateSettings:
    """The functions' and queues' scaling settings, parameters at their defaults."""
    template = load_template(path)
    parameters = parameter_values(template, {})
    resolve = _resolver(template)
    functions: dict[str, Function] = {}
    queues: dict[str, Queue] = {}
    for lid, resource in template.resources.items():
        props = resource.properties
        if resource.type == "AWS::Serverless::Function":
            functions[lid] = Function(
                logical_id=lid,
                memory_mb=int(resolve.resolve(props.get("MemorySize", 128))),
                reserved_concurrency=_optional_int(
                    resolve, props.get("ReservedConcurrentExecutions")
                ),
                sources=tuple(_event_sources(resolve, lid, props.get("Events") or {})),
            )
        elif resource.type == "AWS::SQS::Queue":
            redrive = props.get("RedrivePolicy") or {}
            queues[lid] = Queue(
                logical_id=lid,
                visibility_timeout_s=int(resolve.resolve(props.get("VisibilityTimeout", 30))),
                max_receive_count=_optional_int(resolve, redrive.get("maxReceiveCount")),
            )
    return TemplateSettings(functions=functions, queues=queues, parameters=parameters)
