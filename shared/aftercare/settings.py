"""A function's settings, read from its environment and validated before its first event.

A missing or invalid variable is a deployment bug: it must fail the first invocation with the
variable's name, not turn every record of every batch into a retried failure.

    class Settings(EnvSettings):
        tickets_table: str                  # from TICKETS_TABLE
        hold_hours: int                     # from HOLD_HOURS, "72" -> 72

    @cache
    def deps() -> Deps:
        return Deps(load_settings(Settings))

    def handler(event, context):
        deps()                              # first line: settings checked before any record

A plain pydantic model rather than pydantic-settings: the functions read a handful of scalar
variables, and pydantic-settings (with python-dotenv) cost ~150-250 ms of every cold start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class EnvSettings(BaseModel):
    """Settings whose fields are environment variables: field `tickets_table` is
    TICKETS_TABLE; values are converted like pydantic's lax mode ("30" -> 30)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


S = TypeVar("S", bound=EnvSettings)


class MissingSettings(RuntimeError):
    """The environment lacks variables the function needs, or holds invalid values."""


def load_settings(model: type[S], environ: Mapping[str, str] | None = None) -> S:
    """`model` from the environment; MissingSettings names every missing or invalid variable."""
    source = os.environ if environ is None else environ
    values = {name: source[name.upper()] for name in model.model_fields if name.upper() in source}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()]
        raise MissingSettings(
            f"{model.__name__}: environment variable {'; '.join(problems)}"
        ) from None


def _problem(error: Any) -> str:
    name = str(error["loc"][0]).upper() if error.get("loc") else "?"
    return f"{name} is missing" if error["type"] == "missing" else f"{name}: {error['msg']}"
