"""What every handler wraps itself in: the Lambda context in the logs, metrics flushed at the
end of the invocation, and the handler traced (a no-op unless the tracer is enabled).

    @entry_point
    def handler(event, context):
        deps()          # first line: settings validated, a missing variable fails with its name
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aftercare.observability import logger, metrics, tracer

H = TypeVar("H", bound=Callable[..., Any])


def entry_point(handler: H) -> H:
    """`handler` with the logger's Lambda context, metrics flushing and tracing, in that order
    (outermost first), as Powertools documents them."""
    traced = tracer.capture_lambda_handler(handler)
    return logger.inject_lambda_context(metrics.log_metrics(traced))  # type: ignore[return-value]
