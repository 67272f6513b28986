"""Who may see and do what through the support API.

Callers are Cognito users; their groups and customer id arrive as JWT claims that API
Gateway's JWT authorizer has already verified. Engineers and managers see every ticket;
a customer sees only tickets on devices they own, and anything else is *not found* (never
*forbidden*, which would confirm that it exists). Only engineers start diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

CUSTOMER_ID_CLAIM = "custom:customer_id"
GROUPS_CLAIM = "cognito:groups"


class Group(StrEnum):
    ENGINEERS = "engineers"
    MANAGERS = "managers"
    CUSTOMERS = "customers"


class Forbidden(Exception):
    """The caller is known but may not do this."""


class Caller(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    username: str
    groups: frozenset[str]
    customer_id: str | None = None

    @property
    def staff(self) -> bool:
        return bool({Group.ENGINEERS, Group.MANAGERS} & self.groups)

    @property
    def customer(self) -> bool:
        return not self.staff and Group.CUSTOMERS in self.groups

    @property
    def actor(self) -> str:
        return f"user:{self.username}"

    def may_see(self, owner_customer_id: str | None) -> bool:
        """Whether a record owned by `owner_customer_id` is visible to this caller."""
        if self.staff:
            return True
        return (
            self.customer and self.customer_id is not None and owner_customer_id == self.customer_id
        )

    def require_reader(self) -> None:
        if not (self.staff or self.customer):
            raise Forbidden("this API is for engineers, managers and customers")

    def require_engineer(self) -> None:
        if Group.ENGINEERS not in self.groups:
            raise Forbidden("only engineers may start diagnostics")


def claim_list(value: Any) -> list[str]:
    """A list claim as API Gateway hands it over: a JSON list, or its "[a b c]" rendering."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if not isinstance(value, str):
        return []
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [item for item in text.replace(",", " ").split() if item]


def caller_from_claims(claims: Mapping[str, Any]) -> Caller:
    customer_id = claims.get(CUSTOMER_ID_CLAIM)
    return Caller(
        subject=str(claims.get("sub", "")),
        username=str(
            claims.get("cognito:username") or claims.get("username") or claims.get("sub", "")
        ),
        groups=frozenset(claim_list(claims.get(GROUPS_CLAIM))),
        customer_id=str(customer_id) if customer_id else None,
    )
