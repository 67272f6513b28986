"""A function's settings, read from its environment and validated before its first event.

A missing or invalid variable is a deployment bug: it must fail the cold start with the
variable's name, not turn every record of every batch into a retried failure.

    @cold_start(deps)                       # innermost decorator of the handler
    def handler(event, context): ...

    @cache
    def deps() -> Deps:
        return Deps(load_settings(Settings))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)
H = TypeVar("H", bound=Callable[..., Any])


class MissingSettings(RuntimeError):
    """The environment lacks variables the function needs, or holds invalid values."""


def load_settings(model: type[S]) -> S:
    """`model` from the environment; MissingSettings names every missing or invalid variable."""
    try:
        return model()
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()]
        raise MissingSettings(
            f"{model.__name__}: environment variable {'; '.join(problems)}"
        ) from None


def _problem(error: Any) -> str:
    name = str(error["loc"][0]).upper() if error.get("loc") else "?"
    return f"{name} is missing" if error["type"] == "missing" else f"{name}: {error['msg']}"


def cold_start(build: Callable[[], object]) -> Callable[[H], H]:
    """Handler decorator: `build()` (cached by the caller) runs before the event is looked at,
    so its settings are validated once, on the first invocation, outside any record."""

    def decorate(handler: H) -> H:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            build()
            return handler(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
