"""Two workers polling one queue, as the local stack runs an SQS source's concurrent batches:
every message is processed exactly once, and both share the work.

Against the stack's own serial moto server: moto's SQS backend takes no lock, so receives served
concurrently by the threaded server can race; the stack's server answers one request at a time."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.motoserver import SerialMotoServer
from tests.fakes.aws import use_fake_credentials
from tests.integration.test_worker import (
    eventually,
    queue_depth,
    queues,  # noqa: F401 - fixture
    sqs,  # noqa: F401 - fixture
    start_spec,
    worker_spec,
)

pytestmark = pytest.mark.integration
MESSAGES = 60

SLOW_RECORDER = textwrap.dedent(
    """
    import json
    import os
    import time

    def handler(event, context):
        time.sleep(0.2)  # long enough for the other worker to take the next batch
        with open(os.environ["RECORDS_FILE"], "a") as records:
            for record in event["Records"]:
                records.write(json.dumps({"body": record["body"], "pid": os.getpid()}) + "\\n")
        return {"batchItemFailures": []}
    """
)


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    use_fake_credentials(monkeypatch)
    with SerialMotoServer() as server:
        # moto's backends live in this process: forget the queues earlier tests left behind
        reset = urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()
        yield server.url


def test_two_pollers_on_one_queue_process_every_message_exactly_once(
    tmp_path: Path,
    moto_endpoint: str,
    sqs: Any,  # noqa: F811
    queues: dict[str, str],  # noqa: F811
) -> None:
    # Given a worker and an SQS-only worker on the same queue, with leases as in the stack
    spec = worker_spec(tmp_path, moto_endpoint, queues)
    (tmp_path / "code" / "handler.py").write_text(SLOW_RECORDER)
    spec.update(schedule_sources=[], sqs_lease_s=3)
    workers = [start_spec("infra.local.worker", spec, tmp_path, name) for name in ("w1", "w2")]
    records = tmp_path / "records.jsonl"
    try:
        # When a burst of messages arrives
        for start in range(0, MESSAGES, 10):
            sqs.send_message_batch(
                QueueUrl=queues["url"],
                Entries=[
                    {"Id": str(n), "MessageBody": f"fault-{n}"} for n in range(start, start + 10)
                ],
            )

        def all_recorded() -> bool:
            return records.exists() and len(records.read_text().splitlines()) >= MESSAGES

        eventually(all_recorded, timeout=60, what="every message to be processed")
        eventually(lambda: queue_depth(sqs, queues["url"]) == 0, what="the queue to drain")
    finally:
        for worker in workers:
            worker.stop()
    # Then each message was processed once, by one of the two, and both took batches
    processed = [json.loads(line) for line in records.read_text().splitlines()]
    assert sorted(p["body"] for p in processed) == sorted(f"fault-{n}" for n in range(MESSAGES))
    assert len({p["pid"] for p in processed}) == 2
    assert queue_depth(sqs, queues["dlq_url"]) == 0
