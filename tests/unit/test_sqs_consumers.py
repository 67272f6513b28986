"""The local stack runs an SQS source's batches in several processes, up to its concurrency."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.cli import parse_sqs_concurrency
from infra.local.sqs_consumers import SqsConcurrency, consumers, sqs_only_specs


def sqs_source(event_id: str, maximum_concurrency: int | None = 10) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "queue_url": f"http://moto/123456789012/{event_id}",
        "queue_arn": f"arn:aws:sqs:eu-west-1:123456789012:{event_id}",
        "maximum_concurrency": maximum_concurrency,
    }


def function_spec(**sources: Any) -> dict[str, Any]:
    return {
        "logical_id": "FaultIntakeFunction",
        "sqs_sources": [],
        "stream_sources": [],
        "schedule_sources": [],
        "checkpoint_dir": "/state/checkpoints/FaultIntakeFunction",
        "invoke_port": 4321,
        **sources,
    }


def test_an_sqs_sourced_function_gets_k_pollers_capped_by_the_local_limit():
    # Given a function on a queue whose MaximumConcurrency is 10, with a local limit of 3
    spec = function_spec(sqs_sources=[sqs_source("Faults")])
    # When the stack plans its workers
    extras = sqs_only_specs("FaultIntakeFunction", spec, limit=3)
    # Then the worker and two SQS-only workers poll it: three batches at once
    assert sorted(extras) == ["FaultIntakeFunction-sqs2", "FaultIntakeFunction-sqs3"]
    for extra in extras.values():
        assert extra["sqs_sources"] == spec["sqs_sources"]
        assert extra["stream_sources"] == extra["schedule_sources"] == []
        assert extra["checkpoint_dir"] is None
        assert extra["invoke_port"] == 0


def test_the_templates_maximum_concurrency_caps_the_local_limit():
    spec = function_spec(sqs_sources=[sqs_source("Faults", maximum_concurrency=2)])
    assert list(sqs_only_specs("FaultIntakeFunction", spec, limit=5)) == [
        "FaultIntakeFunction-sqs2"
    ]


def test_extra_workers_poll_only_the_sources_that_allow_another_batch():
    spec = function_spec(sqs_sources=[sqs_source("Results", 3), sqs_source("DeadLetters", 2)])
    extras = sqs_only_specs("DiagnosticsResultFunction", spec, limit=10)
    polled = {name: [s["event_id"] for s in e["sqs_sources"]] for name, e in extras.items()}
    assert polled == {
        "DiagnosticsResultFunction-sqs2": ["Results", "DeadLetters"],
        "DiagnosticsResultFunction-sqs3": ["Results"],
    }


@pytest.mark.parametrize(
    "sources",
    [
        {"stream_sources": [{"event_id": "Changes"}]},
        {"schedule_sources": [{"event_id": "Sweep", "rate_seconds": 60}]},
    ],
)
def test_stream_and_schedule_sources_keep_one_poller(sources: dict[str, Any]):
    spec = function_spec(**sources)
    assert consumers(spec["sqs_sources"], limit=3) == 1
    assert sqs_only_specs("SweepFunction", spec, limit=3) == {}


def test_a_limit_of_one_is_the_single_worker():
    spec = function_spec(sqs_sources=[sqs_source("Faults")])
    assert sqs_only_specs("FaultIntakeFunction", spec, limit=1) == {}


def test_the_default_runs_three_fault_intake_batches_and_one_of_the_rest():
    concurrency = SqsConcurrency()
    assert concurrency.limit("FaultIntakeFunction") == 3
    assert concurrency.limit("NotifierFunction") == 1


def test_the_command_line_limit_for_every_function_replaces_the_defaults():
    assert parse_sqs_concurrency(["2"]) == SqsConcurrency(2, {})
    assert parse_sqs_concurrency(["NotifierFunction=2"]) == SqsConcurrency(
        1, {"FaultIntakeFunction": 3, "NotifierFunction": 2}
    )
    assert parse_sqs_concurrency(["FaultIntakeFunction=5", "1"]) == SqsConcurrency(
        1, {"FaultIntakeFunction": 5}
    )
    with pytest.raises(SystemExit):
        parse_sqs_concurrency(["0"])
