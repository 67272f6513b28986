"""What the Lambda runtime gives a function: its context, its environment, its handler imported,
and one invocation at a time (like one Lambda instance), reported the way Lambda logs it.

Deviation from AWS, on purpose: a handler that overruns ``timeout`` is not killed (a thread
cannot be); a warning is logged.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from infra.local.worker_spec import WorkerSpec

logger = logging.getLogger("infra.local.worker")  # not under "aftercare": the functions' logger

Handler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class LambdaContext:
    """Quacks like the Lambda runtime's context object (all that Powertools reads, and more)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float  # time.monotonic() at which Lambda would stop the invocation
    identity: None = None
    client_context: None = None
    tenant_id: None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class FunctionIdentity:
    name: str
    arn: str
    memory_mb: int
    timeout_s: int
    log_group: str
    log_stream: str

    @classmethod
    def from_spec(cls, spec: WorkerSpec) -> FunctionIdentity:
        started = datetime.now(UTC).strftime("%Y/%m/%d")
        return cls(
            name=spec.function_name,
            arn=f"arn:aws:lambda:{spec.region}:{spec.account_id}:function:{spec.function_name}",
            memory_mb=spec.memory_size,
            timeout_s=spec.timeout,
            log_group=f"/aws/lambda/{spec.function_name}",
            log_stream=f"{started}/[$LATEST]{uuid.uuid4().hex}",
        )

    def context(self, request_id: str) -> LambdaContext:
        return LambdaContext(
            function_name=self.name,
            function_version="$LATEST",
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_mb,
            aws_request_id=request_id,
            log_group_name=self.log_group,
            log_stream_name=self.log_stream,
            deadline=time.monotonic() + self.timeout_s,
        )


def _environment_text(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def lambda_environment(spec: WorkerSpec, identity: FunctionIdentity) -> dict[str, str]:
    """The function's variables plus what the Lambda runtime sets (which wins, as in AWS)."""
    environment = {name: _environment_text(value) for name, value in spec.environment.items()}
    environment.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": identity.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": identity.log_stream,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ENDPOINT_URL": spec.aws_endpoint_url,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "LAMBDA_TASK_ROOT": spec.code_uri,
            "_HANDLER": spec.handler,
        }
    )
    return environment


def apply_environment(environment: Mapping[str, str]) -> None:
    os.environ.update(environment)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


class HandlerImportError(Exception):
    """The handler could not be imported (Lambda's Runtime.ImportModuleError / init error)."""


def import_handler(spec: WorkerSpec) -> Handler:
    """Put the code and layers first on sys.path and import ``module.attribute``."""
    if not Path(spec.code_uri).is_dir():
        raise HandlerImportError(f"code_uri {spec.code_uri} is not a directory")
    module_name, _, attribute = spec.handler.rpartition(".")
    sys.path[0:0] = [spec.code_uri, *spec.layer_paths]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # module init runs arbitrary code; report whatever it raised
        raise HandlerImportError(
            f"cannot import module {module_name!r} for handler {spec.handler!r} from "
            f"{spec.code_uri} (layers: {spec.layer_paths}):\n{traceback.format_exc()}"
        ) from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerImportError(
            f"handler {spec.handler!r}: module {module_name!r} has no callable {attribute!r}"
        )
    return cast(Handler, handler)


@dataclass(frozen=True)
class Invocation:
    request_id: str
    ok: bool
    result: Any  # the handler's return value when ok
    error: dict[str, Any] | None  # Lambda's error document when not ok
    duration_s: float


def lambda_error(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The error document Lambda returns for an unhandled exception (handler frames only)."""
    handler_frames = exc.__traceback__.tb_next if exc.__traceback__ else None
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(handler_frames)),
    }


class Invoker:
    """Calls the handler one invocation at a time, like a single Lambda instance."""

    def __init__(self, handler: Handler, identity: FunctionIdentity) -> None:
        self._handler = handler
        self._identity = identity
        self._lock = threading.Lock()

    def invoke(self, event: Any, source: str) -> Invocation:
        with self._lock:
            invocation = self._invoke(event)
        self._report(invocation, source)
        return invocation

    def _invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        try:
            result = self._handler(event, self._identity.context(request_id))
        except Exception as exc:  # the runtime turns any handler exception into a function error
            error = lambda_error(exc, request_id)
            return Invocation(request_id, False, None, error, time.monotonic() - started)
        return Invocation(request_id, True, result, None, time.monotonic() - started)

    def _report(self, invocation: Invocation, source: str) -> None:
        status = "ok" if invocation.ok else "error"
        logger.info(
            "REPORT RequestId: %s Source: %s Duration: %.2f ms Status: %s",
            invocation.request_id,
            source,
            invocation.duration_s * 1000,
            status,
        )
        if invocation.error:
            logger.error(
                "invocation %s failed: %s: %s\n%s",
                invocation.request_id,
                invocation.error["errorType"],
                invocation.error["errorMessage"],
                "".join(invocation.error["stackTrace"]),
            )
        if invocation.duration_s > self._identity.timeout_s:
            logger.warning(
                "invocation %s ran %.1f s, over the function's %d s timeout: Lambda would have "
                "stopped it and counted it as failed",
                invocation.request_id,
                invocation.duration_s,
                self._identity.timeout_s,
            )
