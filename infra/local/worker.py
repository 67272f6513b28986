"""One local Lambda function: imports its handler and feeds it events, like one Lambda instance.

Run: ``python -m infra.local.worker --spec-file PATH`` (see `WorkerSpec`).

Event sources, all serialised through one lock (one instance, one invocation at a time; see
`infra.local.lambda_runtime`):

* SQS, emulating the event source mapping (`infra.local.sqs_source`).
* DynamoDB streams, emulating the stream event source mapping (`infra.local.streams`): shards
  read in order, filter patterns, batches, retries, bisection, partial batch responses and the
  on-failure SQS destination.
* Schedules: an EventBridge "Scheduled Event" every ``rate_seconds`` (`infra.local.scheduler`).
* HTTP: Lambda's Invoke API and ``GET /health`` (`infra.local.invoke_server`).

stdout carries only the ``READY {"invoke_url": ...}`` line; everything else, including what the
handler prints (Powertools logs, EMF metrics), goes to stderr. Each module says where it
deviates from AWS on purpose; with ``checkpoint_dir`` stream positions survive a restart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pydantic import ValidationError

from infra.local.invoke_server import EventQueue, InvokeServer
from infra.local.lambda_runtime import (
    FunctionIdentity,
    Handler,
    HandlerImportError,
    Invoker,
    apply_environment,
    import_handler,
    lambda_environment,
)
from infra.local.process import (
    EXIT_BAD_SPEC,
    EXIT_OK,
    EXIT_RUNTIME_FAILURE,
    aws_client,
    configure_logging,
    load_spec,
    stop_on_signals,
)
from infra.local.profiling import profiled
from infra.local.scheduler import Scheduler
from infra.local.sqs_source import SqsPoller
from infra.local.stream_checkpoints import CheckpointFile
from infra.local.stream_wire import keep_wire_records
from infra.local.streams import StreamPoller
from infra.local.worker_spec import WorkerSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger("infra.local.worker")  # not under "aftercare": the functions' logger

HEALTH_CHECK_INTERVAL_S = 1.0
SHUTDOWN_GRACE_S = 5.0


def _reserve_stdout() -> IO[str]:
    """Keep the real stdout for the READY line; route everything else written to it to stderr."""
    sys.stdout.flush()
    ready = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return ready


def _sqs_client(spec: WorkerSpec) -> SQSClient:
    return aws_client("sqs", region=spec.region, endpoint_url=spec.aws_endpoint_url)


def _stream_pollers(
    spec: WorkerSpec, identity: FunctionIdentity, invoker: Invoker, stop: threading.Event
) -> list[threading.Thread]:
    if not spec.stream_sources:
        return []
    streams = aws_client("dynamodbstreams", region=spec.region, endpoint_url=spec.aws_endpoint_url)
    keep_wire_records(streams)  # records as the Lambda event has them, unparsed
    needs_sqs = any(source.on_failure_destination for source in spec.stream_sources)
    sqs = _sqs_client(spec) if needs_sqs else None
    return [
        StreamPoller(
            source,
            streams=streams,
            sqs=sqs,
            invoker=invoker,
            function_arn=identity.arn,
            region=spec.region,
            retry_backoff_s=spec.retry_backoff_s,
            stop=stop,
            checkpoints=(
                CheckpointFile(Path(spec.checkpoint_dir) / f"{source.event_id}.json")
                if spec.checkpoint_dir
                else None
            ),
        ).thread
        for source in spec.stream_sources
    ]


def _start_sources(
    spec: WorkerSpec, identity: FunctionIdentity, invoker: Invoker, stop: threading.Event
) -> list[threading.Thread]:
    threads = [
        Scheduler(source, identity, invoker, spec.region, stop).thread
        for source in spec.schedule_sources
    ]
    threads += _stream_pollers(spec, identity, invoker, stop)
    if spec.sqs_sources:
        sqs = _sqs_client(spec)
        threads += [
            SqsPoller(
                source,
                sqs=sqs,
                invoker=invoker,
                region=spec.region,
                retry_backoff_s=spec.retry_backoff_s,
                stop=stop,
                lease_s=spec.sqs_lease_s,
            ).thread
            for source in spec.sqs_sources
        ]
    for thread in threads:
        thread.start()
    return threads


def _wait_for_stop(stop: threading.Event, threads: Sequence[threading.Thread]) -> int:
    while not stop.wait(HEALTH_CHECK_INTERVAL_S):
        dead = [thread.name for thread in threads if not thread.is_alive()]
        if dead:
            logger.error("event source threads died: %s; exiting", ", ".join(dead))
            return EXIT_RUNTIME_FAILURE
    return EXIT_OK


def _announce(server: InvokeServer, ready: IO[str]) -> None:
    host, port = server.server_address[:2]
    host = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)  # noqa: S104 (comparison only)
    ready.write(f"READY {json.dumps({'invoke_url': f'http://{host}:{port}/invoke'})}\n")
    ready.close()


def serve(
    spec: WorkerSpec,
    handler: Handler,
    identity: FunctionIdentity,
    ready: IO[str],
    stop: threading.Event,
) -> int:
    """Serve invokes and event sources until `stop` is set; finish the batch in hand."""
    invoker = Invoker(handler, identity)
    events = EventQueue(invoker)
    try:
        server = InvokeServer((spec.invoke_host, spec.invoke_port), invoker, identity, events)
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", spec.invoke_host, spec.invoke_port, exc)
        return EXIT_RUNTIME_FAILURE
    threading.Thread(target=server.serve_forever, name="invoke-http", daemon=True).start()
    _announce(server, ready)
    sources = _start_sources(spec, identity, invoker, stop)
    code = _wait_for_stop(stop, sources)
    stop.set()
    for thread in sources:
        thread.join(spec.timeout + SHUTDOWN_GRACE_S)
    server.shutdown()
    server.server_close()
    events.close()
    logger.info("stopped")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one Lambda function locally")
    parser.add_argument("--spec-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        spec = load_spec(WorkerSpec, args.spec_file)
    except (OSError, ValidationError) as exc:
        sys.stderr.write(f"worker: cannot start from {args.spec_file}: {exc}\n")
        return EXIT_BAD_SPEC
    configure_logging(f"worker[{spec.logical_id}]")
    stop = threading.Event()
    stop_on_signals(stop, logger)
    with profiled(spec.logical_id, stop):  # with AFTERCARE_PROFILE_DIR set (`make profile`)
        return _run(spec, stop)


def _run(spec: WorkerSpec, stop: threading.Event) -> int:
    ready = _reserve_stdout()
    identity = FunctionIdentity.from_spec(spec)
    apply_environment(lambda_environment(spec, identity))
    try:
        handler = import_handler(spec)
    except HandlerImportError as exc:
        logger.error("%s", exc)
        return EXIT_BAD_SPEC
    if stop.is_set():  # asked to stop while the handler was importing
        return EXIT_OK
    return serve(spec, handler, identity, ready, stop)


if __name__ == "__main__":
    sys.exit(main())
