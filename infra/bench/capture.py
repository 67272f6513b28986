"""Record every DynamoDB request a process makes (with `ReturnConsumedCapacity=TOTAL`).

Installed in the stack's worker processes by `inject/sitecustomize.py` when the environment
names a capture directory (`AFTERCARE_BENCH_CAPTURE`): a botocore event hook on every DynamoDB
client, so the functions' own code is measured unchanged. A request is written, as one JSON line
in `<dir>/<pid>.jsonl`, only while `<dir>/on` exists: the benchmark switches capture on around
the capacity scenarios and off during the timed load.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

CAPTURE_VARIABLE = "AFTERCARE_BENCH_CAPTURE"
SWITCH = "on"
_KEPT_RESPONSE_FIELDS = ("Item", "Items", "Responses", "Count", "ConsumedCapacity", "__type")


class Recorder:
    """The hook's state: where to write, and a lock (a worker may call from several threads)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return (self.directory / SWITCH).exists()

    def ask_capacity(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def after_call(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.active:
            return
        body = context.get("bench_request_body")
        try:
            answer = json.loads(http_response.content or b"{}")
        except ValueError:
            answer = {}
        line = {
            "t": time.time(),
            # The worker sets the function's name for each invocation, not at start-up.
            "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", f"pid-{os.getpid()}"),
            "op": model.name,
            "status": http_response.status_code,
            "request": json.loads(body) if body else {},
            "response": {k: v for k, v in answer.items() if k in _KEPT_RESPONSE_FIELDS},
        }
        with self._lock, (self.directory / f"{os.getpid()}.jsonl").open("a") as sink:
            sink.write(json.dumps(line) + "\n")

    def before_call(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        body = params.get("body")
        context["bench_request_body"] = body.decode() if isinstance(body, bytes) else body

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("provide-client-params.dynamodb", self.ask_capacity)
        events.register("before-call.dynamodb", self.before_call)
        events.register("after-call.dynamodb", self.after_call)


def install() -> None:
    """Attach the recorder to every DynamoDB client this process creates from now on."""
    directory = os.environ.get(CAPTURE_VARIABLE)
    if not directory:
        return
    import botocore.session

    recorder = Recorder(Path(directory))
    create_client = botocore.session.Session.create_client

    def create_and_attach(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, service_name, *args, **kwargs)
        if service_name == "dynamodb":
            recorder.attach(client)
        return client

    botocore.session.Session.create_client = create_and_attach  # type: ignore[method-assign]


def read_records(directory: Path) -> list[dict[str, Any]]:
    """Every recorded request, oldest first."""
    records: list[dict[str, Any]] = []
    for path in directory.glob("*.jsonl"):
        with path.open() as lines:
            records.extend(json.loads(line) for line in lines if line.strip())
    return sorted(records, key=lambda r: r["t"])


def clear(directory: Path) -> None:
    for path in directory.glob("*.jsonl"):
        path.unlink()
