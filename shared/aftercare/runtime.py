"""What every handler wraps itself in: the Lambda context in the logs, metrics flushed at the
end of the invocation, and the handler traced (a no-op unless the tracer is enabled); and
`on_first_use`, for a dependency few invocations need.

    @entry_point
    def handler(event, context):
        deps()          # first line: settings validated, a missing variable fails with its name
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar, cast

from aftercare.observability import logger, metrics, tracer

H = TypeVar("H", bound=Callable[..., Any])
T = TypeVar("T")


def entry_point(handler: H) -> H:
    """`handler` with the logger's Lambda context, metrics flushing and tracing, in that order
    (outermost first), as Powertools documents them."""
    traced = tracer.capture_lambda_handler(handler)
    return logger.inject_lambda_context(metrics.log_metrics(traced))  # type: ignore[return-value]


class _OnFirstUse:
    def __init__(self, build: Callable[[], Any]) -> None:
        self._built = cache(build)

    def __getattr__(self, name: str) -> Any:
        if name == "_built":  # not initialised (a copy): no recursion
            raise AttributeError(name)
        return getattr(self._built(), name)


def on_first_use(build: Callable[[], T]) -> T:
    """What `build()` returns, built (once) when one of its attributes is first used.

    For a dependency of `deps()` that few invocations use (the telemetry function's maintenance
    desk, the owners API's ticket handover): its adapters, domain modules and data files are
    imported and loaded by the first invocation that needs them, not by every cold start.
    `deps()` still validates every setting, so a missing variable fails the first invocation.
    """
    return cast(T, _OnFirstUse(build))
