"""A restarted stream consumer resumes from its checkpoint file: nothing lost, nothing re-run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.local.motoserver import SerialMotoServer
from infra.local.stream_checkpoints import CheckpointFile
from infra.local.streams import StreamPoller, StreamSourceSpec
from tests.fakes.aws import moto_clients

pytestmark = pytest.mark.integration
REGION = "us-east-1"


@dataclass
class Outcome:
    request_id: str = "req"
    ok: bool = True
    result: Any = None


class Recorder:
    """Stands for the handler: remembers the key of every record it was invoked with."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def invoke(self, event: Any, source: str) -> Outcome:
        self.keys += [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        return Outcome()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with SerialMotoServer() as server:
        yield server.url


def table_with_stream(ddb: Any, name: str) -> str:
    description = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    return str(description["TableDescription"]["LatestStreamArn"])


class Consumer:
    """One worker's lifetime of a stream poller sharing `checkpoints` with its successors."""

    def __init__(self, endpoint: str, source: StreamSourceSpec, checkpoints: Path) -> None:
        self.recorder = Recorder()
        self.stop = threading.Event()
        self.poller = StreamPoller(
            source,
            streams=moto_clients(endpoint, "dynamodbstreams")[0],
            sqs=None,
            invoker=self.recorder,
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
            region=REGION,
            retry_backoff_s=0.1,
            stop=self.stop,
            checkpoints=CheckpointFile(checkpoints),
        )
        self.poller.thread.start()

    def saw(self, keys: list[str], timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.recorder.keys) < len(keys):
            time.sleep(0.05)
        time.sleep(0.5)  # anything extra would arrive now
        return self.recorder.keys

    def crash(self) -> None:
        self.stop.set()
        self.poller.thread.join(10)


def put(ddb: Any, table: str, *keys: str) -> None:
    for key in keys:
        ddb.put_item(TableName=table, Item={"pk": {"S": key}})


@pytest.mark.parametrize("starting_position", ["LATEST", "TRIM_HORIZON"])
def test_a_restarted_consumer_resumes_after_its_last_settled_batch(
    endpoint: str, tmp_path: Path, starting_position: str
) -> None:
    ddb, _ = moto_clients(endpoint, "dynamodb", "dynamodbstreams")
    table = f"resume-{starting_position.lower()}"
    source = StreamSourceSpec(
        event_id="Changes",
        stream_arn=table_with_stream(ddb, table),
        table_name=table,
        starting_position=starting_position,  # type: ignore[arg-type]
        batch_size=10,
    )
    checkpoints = tmp_path / "Changes.json"
    # Given a consumer that processed two changes, then died
    first = Consumer(endpoint, source, checkpoints)
    time.sleep(1.0)  # reading from LATEST
    put(ddb, table, "a", "b")
    assert first.saw(["a", "b"]) == ["a", "b"]
    first.crash()
    # When two more changes happen while it is down, and one after it is back
    put(ddb, table, "c", "d")
    second = Consumer(endpoint, source, checkpoints)
    put(ddb, table, "e")
    # Then the restarted consumer processes exactly those
    try:
        assert second.saw(["c", "d", "e"]) == ["c", "d", "e"]
    finally:
        second.crash()


def test_a_latest_consumer_that_died_before_settling_anything_loses_nothing(
    endpoint: str, tmp_path: Path
) -> None:
    ddb, _ = moto_clients(endpoint, "dynamodb", "dynamodbstreams")
    table = "resume-unsettled"
    arn = table_with_stream(ddb, table)
    source = StreamSourceSpec(
        event_id="Changes", stream_arn=arn, table_name=table, starting_position="LATEST"
    )
    # Given a change from before the consumer first started (not its business: LATEST)
    put(ddb, table, "before")
    time.sleep(2.2)  # stream times are whole seconds
    # And a consumer that died before it settled anything
    first = Consumer(endpoint, source, tmp_path / "Changes.json")
    time.sleep(1.0)
    first.crash()
    assert first.recorder.keys == []
    # When a change happens while it is down
    put(ddb, table, "while-down")
    second = Consumer(endpoint, source, tmp_path / "Changes.json")
    # Then the restarted consumer processes it, and not the older one
    try:
        assert second.saw(["while-down"]) == ["while-down"]
    finally:
        second.crash()
