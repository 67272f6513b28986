"""A local Lambda worker's HTTP face: Lambda's Invoke API and a health check.

``POST /invoke`` or ``POST /2015-03-31/functions/<name>/invocations`` (including
``X-Amz-Invocation-Type: Event`` and ``DryRun``); ``GET /health``.
"""

from __future__ import annotations

import decimal
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from infra.local.lambda_runtime import FunctionIdentity, Invocation, Invoker
from infra.local.serving import JsonRequestHandler, LocalHttpServer

logger = logging.getLogger("infra.local.worker")  # not under "aftercare": the functions' logger


class EventQueue:
    """Asynchronous (``Event``) invocations, run one after another like Lambda's event queue."""

    def __init__(self, invoker: Invoker) -> None:
        self._invoker = invoker
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-invoke")
        self._lock = threading.Lock()
        self._pending = 0

    def submit(self, event: Any) -> None:
        with self._lock:
            self._pending += 1
        self._pool.submit(self._run, event)

    def _run(self, event: Any) -> None:
        try:
            self._invoker.invoke(event, source="HTTP Event")
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            dropped = self._pending  # cancelled before they ran
        if dropped:
            logger.warning("%d queued asynchronous invocations dropped at shutdown", dropped)


def _json_default(value: object) -> object:
    if isinstance(value, decimal.Decimal):  # as the Lambda Python runtime does
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _invocation_body(invocation: Invocation) -> tuple[bytes, bool]:
    """The Invoke response body and whether it is a function error."""
    if invocation.error is not None:
        return json.dumps(invocation.error).encode(), True
    try:
        return json.dumps(invocation.result, default=_json_default).encode(), False
    except (TypeError, ValueError) as exc:
        error = {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
            "requestId": invocation.request_id,
            "stackTrace": [],
        }
        return json.dumps(error).encode(), True


class InvokeServer(LocalHttpServer):
    def __init__(
        self,
        address: tuple[str, int],
        invoker: Invoker,
        identity: FunctionIdentity,
        events: EventQueue,
    ) -> None:
        super().__init__(address, _InvokeRequestHandler)
        self.invoker = invoker
        self.identity = identity
        self.events = events

    def names_function(self, requested: str) -> bool:
        name = unquote(requested)
        return name in (self.identity.name, self.identity.arn) or name.endswith(
            f":function:{self.identity.name}"
        )


class _InvokeRequestHandler(JsonRequestHandler):
    server_version = "aftercare-local-lambda"
    logger = logger

    @property
    def _server(self) -> InvokeServer:
        return cast(InvokeServer, self.server)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/health":
            self.send_json(HTTPStatus.OK, {"function": self._server.identity.name, "ok": True})
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        if not self._is_invoke_path():
            self._send_not_found()
            return
        try:
            event = self._read_event()
        except ValueError as exc:
            self._send_error("InvalidRequestContentException", f"Could not parse body: {exc}")
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "RequestResponse":
            self._invoke_synchronously(event)
        elif invocation_type == "Event":
            self._server.events.submit(event)
            self.send_body(HTTPStatus.ACCEPTED, b"")
        elif invocation_type == "DryRun":
            self.send_body(HTTPStatus.NO_CONTENT, b"")
        else:
            self._send_error(
                "InvalidParameterValueException", f"unknown invocation type {invocation_type}"
            )

    def _is_invoke_path(self) -> bool:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts == ["invoke"]:
            return True
        is_api_path = len(parts) == 4 and parts[0::3] == ["2015-03-31", "invocations"]
        return is_api_path and parts[1] == "functions" and self._server.names_function(parts[2])

    def _read_event(self) -> Any:
        body = self.read_body()
        return json.loads(body) if body.strip() else {}

    def _invoke_synchronously(self, event: Any) -> None:
        invocation = self._server.invoker.invoke(event, source="HTTP")
        body, function_error = _invocation_body(invocation)
        headers = {"X-Amzn-RequestId": invocation.request_id, "X-Amz-Executed-Version": "$LATEST"}
        if function_error:
            headers["X-Amz-Function-Error"] = "Unhandled"
        self.send_body(HTTPStatus.OK, body, headers)

    def _send_not_found(self) -> None:
        self.send_json(
            HTTPStatus.NOT_FOUND,
            {"Type": "User", "message": f"no such function or route: {self.path}"},
            {"X-Amzn-ErrorType": "ResourceNotFoundException"},
        )

    def _send_error(self, error_type: str, message: str) -> None:
        self.send_json(
            HTTPStatus.BAD_REQUEST,
            {"Type": "User", "message": message},
            {"X-Amzn-ErrorType": error_type},
        )
