"""The spec file of the local IoT rules engine process (`infra.local.iotrule`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from infra.local.process import SpecModel


class SqsActionSpec(SpecModel):
    type: Literal["sqs"]
    queue_url: Annotated[str, StringConstraints(min_length=1)]
    use_base64: bool = False


class LambdaActionSpec(SpecModel):
    type: Literal["lambda"]
    invoke_url: Annotated[str, StringConstraints(pattern=r"^http://[^/]+/")]
    function_arn: str | None = Field(
        default=None, description="Reported as failedResource; the invoke URL when absent"
    )


ActionSpec = Annotated[SqsActionSpec | LambdaActionSpec, Field(discriminator="type")]


class RuleSpec(SpecModel):
    name: Annotated[str, StringConstraints(min_length=1)]
    sql: str
    actions: list[ActionSpec]
    error_action: ActionSpec | None = None


class TlsSpec(SpecModel):
    """The bridge's client certificate for the local broker (see infra.local.broker_auth)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


class BridgeSpec(SpecModel):
    """The spec file the orchestrator writes for the bridge process."""

    mqtt_url: Annotated[str, StringConstraints(pattern=r"^mqtts?://")]
    tls: TlsSpec | None = None
    aws_endpoint_url: str
    region: str
    client_id: Annotated[str, StringConstraints(min_length=1)]
    rules: Annotated[list[RuleSpec], Field(min_length=1)]
    parked_table: str | None = Field(
        default=None,
        description="The ParkedTable: where a message goes when its rule and error action fail",
    )
    parked_bucket: str | None = Field(
        default=None, description="The ParkedPayloadBucket: envelopes too big for an item"
    )
