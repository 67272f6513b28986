"""The one error shape every API answers with (`aftercare.api.errors` maps exceptions to it):
a module of its own, so the error mapping every API function imports does not define the
ticket and diagnostics views."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    reason: str = Field(description="machine-readable cause, e.g. not_found, forbidden")
    message: str
    detail: list[dict[str, Any]] | None = None
