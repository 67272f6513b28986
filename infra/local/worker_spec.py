"""The spec file the orchestrator writes for one function's worker (`infra.local.worker`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from infra.local.process import SpecModel
from infra.local.streams import StreamSourceSpec

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account


class SqsSourceSpec(SpecModel):
    event_id: str
    queue_url: str
    queue_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[\w-]*:sqs:")]
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 10
    max_batching_window_s: Annotated[float, Field(ge=0, le=300)] = 0
    report_batch_item_failures: bool = False


class ScheduleSourceSpec(SpecModel):
    event_id: str
    rate_seconds: Annotated[float, Field(gt=0)]


class WorkerSpec(SpecModel):
    """The spec file the orchestrator writes for one function's worker process."""

    logical_id: str
    function_name: Annotated[str, StringConstraints(min_length=1)]
    code_uri: str
    layer_paths: list[str] = Field(default_factory=list)
    handler: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")]
    environment: dict[str, str | bool | int | float] = Field(default_factory=dict)
    timeout: Annotated[int, Field(ge=1, le=900)]
    memory_size: Annotated[int, Field(ge=128, le=10_240)]
    region: str
    aws_endpoint_url: str
    sqs_sources: list[SqsSourceSpec] = Field(default_factory=list)
    schedule_sources: list[ScheduleSourceSpec] = Field(default_factory=list)
    stream_sources: list[StreamSourceSpec] = Field(default_factory=list)
    invoke_host: str = "127.0.0.1"
    invoke_port: Annotated[int, Field(ge=0, le=65_535)] = 0
    account_id: Annotated[str, StringConstraints(pattern=r"^\d{12}$")] = DEFAULT_ACCOUNT_ID
    retry_backoff_s: Annotated[int, Field(ge=0, le=43_200)] = 1
    sqs_lease_s: Annotated[int, Field(ge=0, le=43_200)] = 0  # 0: the queue's visibility timeout
    checkpoint_dir: str | None = None  # where stream pollers keep their positions
