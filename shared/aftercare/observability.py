"""Logger, Metrics and the tracer: built once per process and imported by every handler.

Tracing has two layers. Lambda active tracing (`Tracing: Active` in the template) records every
invocation as an X-Ray segment with no SDK in the function. The Powertools Tracer adds X-Ray SDK
subsegments (one per AWS call and per captured method) and is loaded only when
POWERTOOLS_TRACE_DISABLED is an explicit false (template parameter `PowertoolsTracerDisabled`).
Otherwise `tracer` is a `NoOpTracer`: the same decorators, and `aws_xray_sdk` is never imported,
which keeps the SDK and its patching of botocore out of the cold start.

Nothing here imports boto3; the Powertools modules are imported by their submodules so that the
tracer module (whose X-Ray import is lazy) is never asked for a Tracer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.shared.functions import strtobool

if TYPE_CHECKING:
    from aws_lambda_powertools.tracing import Tracer

TRACE_DISABLED_ENV: Final = "POWERTOOLS_TRACE_DISABLED"
TRACED_MODULES: Final = ("botocore",)

F = TypeVar("F", bound=Callable[..., Any])


def tracer_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """True only for an explicit false ("false", "0", "no", ...): absent means tracer off.

    A value that is neither true nor false raises ValueError naming the variable."""
    value = environ.get(TRACE_DISABLED_ENV)
    if value is None:
        return False
    try:
        return not strtobool(value)
    except ValueError:
        raise ValueError(f"{TRACE_DISABLED_ENV}={value!r} is neither true nor false") from None


class NoOpTracer:
    """The Powertools Tracer's surface when the X-Ray SDK is not loaded: decorators return the
    function unchanged, annotations and metadata go nowhere (the Lambda segment still exists)."""

    disabled: Final = True

    @overload
    def capture_method(self, method: F) -> F: ...

    @overload
    def capture_method(
        self,
        method: None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Callable[[F], F]: ...

    def capture_method(
        self,
        method: Any = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any:
        return _unchanged if method is None else method

    # The handler decorator takes the same arguments and does the same nothing.
    capture_lambda_handler = capture_method

    def put_annotation(self, key: str, value: Any) -> None:
        """Dropped: annotations need an SDK subsegment."""

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        """Dropped: metadata needs an SDK subsegment."""

    def patch(self, modules: Sequence[str]) -> None:
        """Nothing to patch without the SDK."""

    def ignore_endpoint(self, hostname: str | None = None, urls: list[str] | None = None) -> None:
        """Nothing is traced, so nothing needs ignoring."""


def _unchanged(function: F) -> F:
    return function


class ServiceMetrics(Metrics):
    """Powertools Metrics whose `log_metrics` records `ColdStart` (dimension function_name) on
    each execution environment's first invocation unless told otherwise: every handler's
    ``@metrics.log_metrics`` counts its cold starts, shown on the operations dashboard."""

    def log_metrics(
        self,
        lambda_handler: Any = None,
        capture_cold_start_metric: bool = True,
        raise_on_empty_metrics: bool = False,
        default_dimensions: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Callable[..., Any]:
        return super().log_metrics(
            lambda_handler=lambda_handler,
            capture_cold_start_metric=capture_cold_start_metric,
            raise_on_empty_metrics=raise_on_empty_metrics,
            default_dimensions=default_dimensions,
            **kwargs,
        )


def build_tracer(environ: Mapping[str, str] = os.environ) -> Tracer | NoOpTracer:
    """The Powertools Tracer when enabled (this imports aws_xray_sdk), else a `NoOpTracer`."""
    if not tracer_enabled(environ):
        return NoOpTracer()
    from aws_lambda_powertools.tracing import Tracer

    # The functions call out only through botocore: patching just it spares the cold start the
    # X-Ray SDK's patch_all (which imports and wraps every library it knows that is installed).
    return Tracer(patch_modules=TRACED_MODULES)


logger = Logger()
metrics = ServiceMetrics()
tracer = build_tracer()
