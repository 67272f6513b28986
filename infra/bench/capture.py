"""Record every DynamoDB request a process makes (with `ReturnConsumedCapacity=TOTAL`).

Installed in the stack's worker processes by `inject/sitecustomize.py` when the environment
names a capture directory (`AFTERCARE_BENCH_CAPTURE`): a botocore event hook on every DynamoDB
client, so the functions' own code is measured unchanged. A request is written, as one JSON line
in `<dir>/<pid>.jsonl`, only while `<dir>/on` exists: the benchmark switches capture on around
the capacity scenarios and off during the timed load.

For every write (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems) the line
also holds `images`: each written item as read (GetItem, consistent) just before and just after
the request, so index writes can be computed from what was really written
(`infra.bench.capacity`). Those reads are the recorder's own: not recorded, not counted.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CAPTURE_VARIABLE = "AFTERCARE_BENCH_CAPTURE"
SWITCH = "on"
_KEPT_RESPONSE_FIELDS = ("Item", "Items", "Responses", "Count", "ConsumedCapacity", "__type")
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


def written_items(
    op: str, request: Mapping[str, Any], key_of: Any
) -> list[tuple[str, dict[str, Any]]]:
    """(table, key) of every item a write request writes (a ConditionCheck writes none);
    `key_of(table, item)` picks a put item's key."""
    if op == "PutItem":
        return [(request["TableName"], key_of(request["TableName"], request["Item"]))]
    if op in ("UpdateItem", "DeleteItem"):
        return [(request["TableName"], dict(request["Key"]))]
    actions: list[tuple[str, str, Mapping[str, Any]]] = []  # (kind, table, body)
    if op == "BatchWriteItem":
        actions = [
            ("Put", table, w["PutRequest"])
            if "PutRequest" in w
            else ("Delete", table, w["DeleteRequest"])
            for table, writes in (request.get("RequestItems") or {}).items()
            for w in writes
        ]
    elif op == "TransactWriteItems":
        for action in request.get("TransactItems") or []:
            (kind, body), *_ = action.items()
            actions.append((kind, body["TableName"], body))
    return [
        (table, key_of(table, body["Item"]) if kind == "Put" else dict(body["Key"]))
        for kind, table, body in actions
        if kind != "ConditionCheck"
    ]


class Recorder:
    """The hook's state: where to write, and a lock (a worker may call from several threads)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._own = threading.local()  # set while the recorder makes its own requests
        self._key_names: dict[str, list[str]] = {}

    @property
    def active(self) -> bool:
        return (self.directory / SWITCH).exists()

    def ask_capacity(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _quiet(self) -> bool:
        return bool(getattr(self._own, "busy", False))

    def _images(self, client: Any, written: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Each written item as it is now (None when absent), read by the recorder itself."""
        self._own.busy = True
        try:
            return [
                client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
                for table, key in written
            ]
        finally:
            self._own.busy = False

    def _key_of(self, client: Any, table: str, item: Mapping[str, Any]) -> dict[str, Any]:
        if table not in self._key_names:
            self._own.busy = True
            try:
                schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
            finally:
                self._own.busy = False
            self._key_names[table] = [k["AttributeName"] for k in schema]
        return {name: item[name] for name in self._key_names[table]}

    def after_call(
        self,
        http_response: Any,
        model: Any,
        context: dict[str, Any],
        client: Any = None,
        **_: Any,
    ) -> None:
        if not self.active or self._quiet():
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
        written = context.get("bench_written")
        if written and client is not None:
            after = self._images(client, written)
            line["images"] = [
                {"table": table, "key": key, "old": old, "new": new}
                for (table, key), old, new in zip(
                    written, context["bench_before"], after, strict=True
                )
            ]
        with self._lock, (self.directory / f"{os.getpid()}.jsonl").open("a") as sink:
            sink.write(json.dumps(line) + "\n")

    def before_call(
        self,
        params: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        client: Any = None,
        **_: Any,
    ) -> None:
        body = params.get("body")
        context["bench_request_body"] = body.decode() if isinstance(body, bytes) else body
        if client is None or model.name not in WRITES or not self.active or self._quiet():
            return
        request = json.loads(context["bench_request_body"] or "{}")
        written = written_items(model.name, request, functools.partial(self._key_of, client))
        context["bench_written"] = written
        context["bench_before"] = self._images(client, written)

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("provide-client-params.dynamodb", self.ask_capacity)
        events.register("before-call.dynamodb", functools.partial(self.before_call, client=client))
        events.register("after-call.dynamodb", functools.partial(self.after_call, client=client))


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
