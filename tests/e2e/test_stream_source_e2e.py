"""A DynamoDB stream consumer in the running local stack sees the tickets that fault intake opens.

The stack runs a scratch copy of template.yaml with one extra function, wired to TicketsTable's
stream exactly as a SAM template would wire it, so this exercises provisioning (GetAtt StreamArn,
FilterCriteria), the worker's stream poller and moto's stream of TransactWriteItems together.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.agent import DeviceAgent
from infra.local.stack import LocalStack
from infra.seeding import demo_devices
from tests.e2e.conftest import device_agent_config, wait_for
from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY, MosquittoBroker

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

PROBE_HANDLER = textwrap.dedent(
    """
    import json
    import os
    import time


    def handler(event, context):
        with open(os.environ["PROBE_FILE"], "a") as probe:
            for record in event["Records"]:
                probe.write(json.dumps({"at": time.time(), "record": record}) + "\\n")
    """
)

PROBE_FUNCTION = """
  StreamProbeFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code}
      Handler: handler.handler
      Environment:
        Variables:
          PROBE_FILE: {probe_file}
      Events:
        TicketInserts:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt TicketsTable.StreamArn
            StartingPosition: LATEST
            BatchSize: 10
            FilterCriteria:
              Filters:
                - Pattern: '{pattern}'
"""
PROBED_FUNCTIONS = ("FaultIntakeFunction", "AutoDiagnoseFunction", "StreamProbeFunction")
TICKET_INSERTS = {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": ["META"]}}}}


def scratch_template(workdir: Path, source: Path = ROOT / "template.yaml") -> tuple[Path, Path]:
    """`source` with absolute code paths and the probe function; returns it and the probe file."""
    code = workdir / "probe"
    code.mkdir()
    (code / "handler.py").write_text(PROBE_HANDLER)
    probe_file = workdir / "probe.jsonl"
    text = source.read_text(encoding="utf-8")
    text = text.replace("CodeUri: functions/", f"CodeUri: {ROOT}/functions/")
    text = text.replace("ContentUri: shared/", f"ContentUri: {ROOT}/shared/")
    head, outputs = text.split("\nOutputs:", 1)
    probe = PROBE_FUNCTION.format(
        code=code, probe_file=probe_file, pattern=json.dumps(TICKET_INSERTS)
    )
    template = workdir / "template.yaml"
    template.write_text(f"{head.rstrip()}\n{probe}\nOutputs:{outputs}", encoding="utf-8")
    return template, probe_file


@pytest.fixture(scope="module")
def probed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not MOSQUITTO_BINARY.exists():
        pytest.fail(f"{MOSQUITTO_BINARY} is missing: run `make setup` (installs mosquitto)")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    workdir = tmp_path_factory.mktemp("stream-e2e")
    template, probe_file = scratch_template(workdir)
    broker = MosquittoBroker(
        workdir=workdir / "mosquitto", auth_dir=workdir / "state", template=template
    )
    broker.start()
    # The fault path and the probe, and AutoDiagnose, whose updates of the new ticket (MODIFY
    # records) the probe's filter must leave out; the other functions' workers would only poll.
    stack = LocalStack(
        ROOT,
        workdir / "state",
        mqtt_url=broker.url,
        template_path=template,
        only_functions=PROBED_FUNCTIONS,
    )
    try:
        state = stack.start()
        yield {"state": state, "probe_file": probe_file, "mqtt_url": broker.url}
    finally:
        stack.stop()
        broker.stop()


def probed(probe_file: Path) -> list[dict[str, Any]]:
    if not probe_file.exists():
        return []
    return [json.loads(line) for line in probe_file.read_text().splitlines()]


def test_a_stream_consumer_receives_the_tickets_fault_intake_opens(probed_stack, tmp_path):
    # Given the stack running a function on TicketsTable's stream (inserted ticket META only)
    assert "StreamProbeFunction" in probed_stack["state"]["functions"]
    thing = demo_devices()[0].thing
    agent = DeviceAgent(device_agent_config(probed_stack["state"], thing, tmp_path / "o"))
    assert agent.start(connect_timeout=10)
    # When a device reports a fault that opens a ticket
    agent.raise_fault("TEMP-HIGH", readings={"temp_c": 91.0})
    agent.stop(drain_timeout=10)
    # Then the consumer gets the ticket's INSERT, once, as a Lambda DynamoDB stream record
    entries = wait_for(lambda: probed(probed_stack["probe_file"]), timeout=30, what="a ticket")
    (entry,) = entries
    record = entry["record"]
    assert record["eventName"] == "INSERT"
    assert record["dynamodb"]["Keys"]["pk"]["S"].startswith("TICKET#")
    assert record["dynamodb"]["NewImage"]["thing"]["S"] == thing
    tickets_table = probed_stack["state"]["resources"]["TicketsTable"]
    assert record["eventSourceARN"].split("/")[1] == tickets_table
