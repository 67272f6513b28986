"""A worker holds its SQS batch on a renewed lease: kept while it works, back soon after it dies."""

from __future__ import annotations

import json
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_worker import (
    eventually,
    moto_endpoint,  # noqa: F401 - fixture
    queues,  # noqa: F401 - fixture
    sqs,  # noqa: F401 - fixture
    start_spec,
    worker_spec,
)

pytestmark = pytest.mark.integration
LEASE_S = 2

SLOW_FIRST_TIME = textwrap.dedent(
    """
    import json
    import os
    import time
    from pathlib import Path

    def handler(event, context):
        for record in event["Records"]:
            if record["attributes"]["ApproximateReceiveCount"] == "1":
                Path(os.environ["STARTED_FILE"]).touch()
                time.sleep(120)  # killed in here
            with open(os.environ["RECORDS_FILE"], "a") as records:
                records.write(json.dumps(record) + "\\n")
        return {"batchItemFailures": []}
    """
)


def lease_spec(tmp_path: Path, endpoint: str, urls: dict[str, str]) -> dict[str, Any]:
    spec = worker_spec(tmp_path, endpoint, urls)
    (tmp_path / "code" / "handler.py").write_text(SLOW_FIRST_TIME)
    spec["environment"]["STARTED_FILE"] = str(tmp_path / "started")
    spec["schedule_sources"] = []
    spec["timeout"] = 150
    spec["sqs_lease_s"] = LEASE_S
    return spec


def visibility(client: Any, url: str) -> tuple[int, int]:
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_a_killed_workers_batch_is_back_within_the_lease_not_the_visibility_timeout(
    tmp_path: Path,
    moto_endpoint: str,  # noqa: F811 - the imported fixture
    sqs: Any,  # noqa: F811
    queues: dict[str, str],  # noqa: F811
) -> None:
    # Given a worker busy with a message from a queue whose visibility timeout is 60 s
    spec = lease_spec(tmp_path, moto_endpoint, queues)
    first = start_spec("infra.local.worker", spec, tmp_path, "first")
    sqs.send_message(QueueUrl=queues["url"], MessageBody="fault-1")
    eventually((tmp_path / "started").exists, what="the handler to start")
    # Then its lease is renewed while it works, well past the lease itself
    time.sleep(3 * LEASE_S)
    assert visibility(sqs, queues["url"]) == (0, 1)
    # When it is SIGKILLed mid-invocation and a new worker takes over
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    killed_at = time.monotonic()
    second = start_spec("infra.local.worker", spec, tmp_path, "second")
    try:
        # Then the message is processed again within seconds, not after 60
        records = tmp_path / "records.jsonl"
        eventually(records.exists, timeout=30, what="the message to come back")
        assert time.monotonic() - killed_at < 20
        (record,) = [json.loads(line) for line in records.read_text().splitlines()]
        assert record["body"] == "fault-1"
        assert record["attributes"]["ApproximateReceiveCount"] == "2"
    finally:
        second.stop()
